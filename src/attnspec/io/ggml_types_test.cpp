// The GGML type table: every row complete and consistent, and hand-computed blocks of a few types
// (the Python tests compare every type with gguf-py bit for bit).
#include "attnspec/io/ggml_types.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace attnspec {
namespace {

TEST(GgmlTypes, EveryReadableTypeHasALayoutAndADequantizer) {
  for (uint32_t id = 0; id < 64; ++id) {
    const TypeLayout* t = type_layout(id);
    if (!t) continue;
    EXPECT_EQ(uint32_t(t->type), id);
    EXPECT_EQ(ggml_type_name(id), t->name);
    EXPECT_NE(t->to_float, nullptr) << t->name;
    EXPECT_GE(t->block, 1u) << t->name;
    EXPECT_LE(t->block, 256u) << t->name;  // readers size their scratch for one 256-value block
    EXPECT_GE(t->bytes, 1u) << t->name;
    EXPECT_NE(readable_types().find(t->name), std::string::npos) << t->name;
  }
  for (DType t : {DType::TQ1_0, DType::TQ2_0, DType::MXFP4, DType::NVFP4, DType::IQ4_NL, DType::IQ4_XS,
                  DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS, DType::IQ3_S, DType::IQ1_S,
                  DType::IQ1_M})
    EXPECT_NE(type_layout(uint32_t(t)), nullptr) << uint32_t(t);
  EXPECT_EQ(type_layout(uint32_t(DType::Q8_1)), nullptr);
  EXPECT_EQ(ggml_type_name(200), "type 200");
}

TEST(GgmlTypes, Tq2_0Block) {
  // qs[64] of 2-bit fields (bits 2j of byte 32h + l: value 128h + 32j + l), then d = 0.5 (F16).
  std::vector<std::byte> b(66);
  for (int l = 0; l < 32; ++l) b[l] = std::byte(uint8_t(0b10'01'00'10));  // q = 2, 0, 1, 2
  for (int l = 32; l < 64; ++l) b[l] = std::byte(uint8_t(l % 3));           // q = l % 3, then 0s
  const uint16_t half = 0x3800;
  std::memcpy(b.data() + 64, &half, 2);
  std::vector<float> out(256);
  layout(DType::TQ2_0).to_float(b.data(), 1, out.data());
  const float first[4] = {0.5f, -0.5f, 0.0f, 0.5f};  // 0.5 * (q - 1)
  for (int p = 0; p < 128; ++p) EXPECT_EQ(out[p], first[p / 32]) << p;
  for (int l = 0; l < 32; ++l) EXPECT_EQ(out[128 + l], 0.5f * float((32 + l) % 3 - 1)) << l;
  for (int p = 160; p < 256; ++p) EXPECT_EQ(out[p], -0.5f) << p;
}

TEST(GgmlTypes, Mxfp4Block) {
  // e = 128 (scale 2^1, halved for the doubled E2M1 table: 1), qs nibbles 0..15 and 15..0.
  std::vector<std::byte> b(17);
  b[0] = std::byte(uint8_t(128));
  for (int j = 0; j < 16; ++j) b[1 + j] = std::byte(uint8_t(j | (15 - j) << 4));
  std::vector<float> out(32);
  layout(DType::MXFP4).to_float(b.data(), 1, out.data());
  const float e2m1x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], e2m1x2[j]) << j;
    EXPECT_EQ(out[16 + j], e2m1x2[15 - j]) << j;
  }
}

TEST(GgmlTypes, Iq2_xxsBlockUsesTheGridAndTheEvenSignRule) {
  // Group 0: grid row 0 (all values 8) four times, scale s = 1 -> db = 1 * 1.5 * 0.25 = 0.375;
  // sign index 1 for row 0: stored bit 0 plus the parity bit 7, so values 0 and 7 are negative.
  std::vector<std::byte> b(66);
  const uint16_t one = 0x3C00;
  std::memcpy(b.data(), &one, 2);
  const uint32_t aux1 = 1u | 1u << 28;
  std::memcpy(b.data() + 2 + 4, &aux1, 4);
  std::vector<float> out(256);
  layout(DType::IQ2_XXS).to_float(b.data(), 1, out.data());
  for (int j = 0; j < 8; ++j) EXPECT_EQ(out[j], (j == 0 || j == 7) ? -3.0f : 3.0f) << j;
  for (int p = 8; p < 32; ++p) EXPECT_EQ(out[p], 3.0f) << p;
  // The other groups: aux1 = 0 (s = 0, db = 0.125, no signs), grid row 0: 0.125 * 8.
  for (int p = 32; p < 256; ++p) EXPECT_EQ(out[p], 1.0f) << p;
}

}  // namespace
}  // namespace attnspec
