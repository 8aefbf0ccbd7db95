// The element types of GGML/GGUF: each block format's layout and its dequantizer, in one table.
//
// Each dequantizer computes exactly what gguf-py's `gguf.quants.dequantize` computes (the tests
// compare them bit for bit): the same float32 operations in the same order, e.g. Q4_1's (d * q) + m,
// never a fused multiply-add (this file is compiled with -ffp-contract=off). A block's scales are
// IEEE half floats (f16) unless said otherwise; "q" is the block's small integer for one value.
#include "attnspec/io/ggml_types.h"

#include <cstring>

namespace attnspec {
namespace {

float half_to_float(uint16_t h) {
  // IEEE 754 binary16 -> binary32, subnormals included.
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

constexpr int QK_K = 256;  // values per block of the K-quants (and the i-quants)

uint8_t u8(const std::byte* p) { return uint8_t(*p); }
int8_t i8(const std::byte* p) { return int8_t(*p); }
template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
float f16(const std::byte* p) { return half_to_float(load<uint16_t>(p)); }

// --- Plain types: one value per "block" ------------------------------------------------------

void f32_to_float(const std::byte* b, size_t n, float* out) { std::memcpy(out, b, n * 4); }
void f16_to_float(const std::byte* b, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = f16(b + 2 * i);
}
void bf16_to_float(const std::byte* b, size_t n, float* out) {  // bfloat16 is the top half of a float32
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = uint32_t(load<uint16_t>(b + 2 * i)) << 16;
    std::memcpy(out + i, &bits, 4);
  }
}
template <typename T>
void cast_to_float(const std::byte* b, size_t n, float* out) {  // F64 and the integer types
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<T>(b + sizeof(T) * i));
}

// --- 32-value blocks: a scale (and a minimum), then the values' bits ---------------------------
// 4-bit values: byte j of qs holds value j in its low nibble and value j + 16 in its high one.

// Q4_0 (18 bytes): d, qs[16]; value = d * (q - 8).
void q4_0(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 18, out += 32) {
    const float d = f16(b);
    for (int j = 0; j < 16; ++j) {
      out[j] = d * float(int8_t(u8(b + 2 + j) & 0x0F) - 8);
      out[j + 16] = d * float(int8_t(u8(b + 2 + j) >> 4) - 8);
    }
  }
}

// Q4_1 (20 bytes): d, m, qs[16]; value = d * q + m.
void q4_1(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 20, out += 32) {
    const float d = f16(b), m = f16(b + 2);
    for (int j = 0; j < 16; ++j) {
      out[j] = d * float(u8(b + 4 + j) & 0x0F) + m;
      out[j + 16] = d * float(u8(b + 4 + j) >> 4) + m;
    }
  }
}

// Q5_0 (22 bytes): d, qh (32 fifth bits, u32 LE: bit j for value j), qs[16]; value = d * (q - 16).
void q5_0(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 22, out += 32) {
    const float d = f16(b);
    const uint32_t qh = load<uint32_t>(b + 2);
    for (int j = 0; j < 16; ++j) {
      const int lo = (u8(b + 6 + j) & 0x0F) | int((qh >> j) & 1) << 4;
      const int hi = (u8(b + 6 + j) >> 4) | int((qh >> (j + 16)) & 1) << 4;
      out[j] = d * float(lo - 16);
      out[j + 16] = d * float(hi - 16);
    }
  }
}

// Q5_1 (24 bytes): d, m, qh (u32), qs[16]; value = d * q + m.
void q5_1(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 24, out += 32) {
    const float d = f16(b), m = f16(b + 2);
    const uint32_t qh = load<uint32_t>(b + 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = (u8(b + 8 + j) & 0x0F) | int((qh >> j) & 1) << 4;
      const int hi = (u8(b + 8 + j) >> 4) | int((qh >> (j + 16)) & 1) << 4;
      out[j] = d * float(lo) + m;
      out[j + 16] = d * float(hi) + m;
    }
  }
}

// Q8_0 (34 bytes): d, qs[32] int8; value = q * d.
void q8_0(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 34, out += 32) {
    const float d = f16(b);
    for (int j = 0; j < 32; ++j) out[j] = float(i8(b + 2 + j)) * d;
  }
}

// --- K-quants: 256-value super-blocks of 16 or 8 sub-blocks, each with its own 4-8 bit scale ---
// 2-bit fields: byte l of a 32-byte group holds, in bits 2j..2j+1, value 32j + l of its 128 values.

// Q2_K (84 bytes): scales[16] (low nibble: scale, high: minimum, per 16 values), qs[64], d, dmin;
// value = (d * sc) * q - (dmin * m).
void q2_k(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 84, out += QK_K) {
    const std::byte *scales = b, *qs = b + 16;
    const float d = f16(b + 80), dmin = f16(b + 82);
    for (int p = 0; p < QK_K; ++p) {
      const int half = p / 128, j = (p % 128) / 32, l = p % 32;
      const uint8_t s = u8(scales + p / 16);
      const float dl = d * float(s & 0x0F), ml = dmin * float(s >> 4);
      out[p] = dl * float((u8(qs + half * 32 + l) >> (2 * j)) & 3) - ml;
    }
  }
}

// Q3_K (110 bytes): hmask[32] (bit j of byte l: value 32j + l's third bit, set meaning "no -4"),
// qs[64] (low 2 bits), scales[12] (16 6-bit scales, offset 32), d; value = (d * sc) * q.
void q3_k(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 110, out += QK_K) {
    const std::byte *hmask = b, *qs = b + 32, *sc = b + 96;
    const float d = f16(b + 108);
    float dl[16];
    for (int i = 0; i < 16; ++i) {
      const int low = (i < 8 ? u8(sc + i) : u8(sc + i - 8) >> 4) & 0x0F;
      const int high = (u8(sc + 8 + i % 4) >> (2 * (i / 4))) & 0x03;
      dl[i] = d * float(int8_t(low | high << 4) - 32);
    }
    for (int p = 0; p < QK_K; ++p) {
      const int half = p / 128, j = (p % 128) / 32, l = p % 32;
      const int low = (u8(qs + half * 32 + l) >> (2 * j)) & 3;
      const int minus4 = ((u8(hmask + l) >> (p / 32)) & 1) ^ 1;
      out[p] = dl[p / 16] * float(low - (minus4 << 2));
    }
  }
}

// Q4_K and Q5_K's 12 bytes of eight 6-bit scales and eight 6-bit minimums, one pair per 32 values.
void scale_min_k4(const std::byte* s, int* sc, int* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = u8(s + j) & 63;
    m[j] = u8(s + 4 + j) & 63;
    sc[j + 4] = (u8(s + 8 + j) & 0x0F) | ((u8(s + j) >> 2) & 0x30);
    m[j + 4] = (u8(s + 8 + j) >> 4) | ((u8(s + 4 + j) >> 2) & 0x30);
  }
}

// Q4_K (144 bytes): d, dmin, scales[12], qs[128] (byte c*32 + l: low nibble value 64c + l, high
// nibble value 64c + 32 + l); value = (d * sc) * q - (dmin * m).
void q4_k(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 144, out += QK_K) {
    const float d = f16(b), dmin = f16(b + 2);
    int sc[8], m[8];
    scale_min_k4(b + 4, sc, m);
    const std::byte* qs = b + 16;
    for (int s = 0; s < 8; ++s) {
      const float ds = d * float(sc[s]), dm = dmin * float(m[s]);
      for (int l = 0; l < 32; ++l) out[32 * s + l] = ds * float((u8(qs + (s / 2) * 32 + l) >> (4 * (s % 2))) & 0x0F) - dm;
    }
  }
}

// Q5_K (176 bytes): d, dmin, scales[12], qh[32] (bit s of byte l: value 32s + l's fifth bit),
// qs[128] as Q4_K; value = (d * sc) * q - (dmin * m).
void q5_k(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 176, out += QK_K) {
    const float d = f16(b), dmin = f16(b + 2);
    int sc[8], m[8];
    scale_min_k4(b + 4, sc, m);
    const std::byte *qh = b + 16, *qs = b + 48;
    for (int s = 0; s < 8; ++s) {
      const float ds = d * float(sc[s]), dm = dmin * float(m[s]);
      for (int l = 0; l < 32; ++l) {
        const int q = ((u8(qs + (s / 2) * 32 + l) >> (4 * (s % 2))) & 0x0F) | ((u8(qh + l) >> s) & 1) << 4;
        out[32 * s + l] = ds * float(q) - dm;
      }
    }
  }
}

// Q6_K (210 bytes): ql[128] (low 4 bits: byte h*64 + m, nibble c, is value 128h + 64c + m),
// qh[64] (2-bit fields as above, per 128 values), scales[16] int8 (per 16 values), d;
// value = (d * sc) * (q - 32).
void q6_k(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 210, out += QK_K) {
    const std::byte *ql = b, *qh = b + 128, *sc = b + 192;
    const float d = f16(b + 208);
    for (int p = 0; p < QK_K; ++p) {
      const int half = p / 128, r = p % 128;
      const int low = (u8(ql + half * 64 + r % 64) >> (4 * (r / 64))) & 0x0F;
      const int high = (u8(qh + half * 32 + r % 32) >> (2 * (r / 32))) & 0x03;
      out[p] = (d * float(i8(sc + p / 16))) * float(int8_t(low | high << 4) - 32);
    }
  }
}

constexpr TypeLayout kTypes[] = {
    {DType::F32, "F32", 1, 4, f32_to_float},
    {DType::F16, "F16", 1, 2, f16_to_float},
    {DType::BF16, "BF16", 1, 2, bf16_to_float},
    {DType::F64, "F64", 1, 8, cast_to_float<double>},
    {DType::I8, "I8", 1, 1, cast_to_float<int8_t>},
    {DType::I16, "I16", 1, 2, cast_to_float<int16_t>},
    {DType::I32, "I32", 1, 4, cast_to_float<int32_t>},
    {DType::I64, "I64", 1, 8, cast_to_float<int64_t>},
    {DType::Q4_0, "Q4_0", 32, 18, q4_0},
    {DType::Q4_1, "Q4_1", 32, 20, q4_1},
    {DType::Q5_0, "Q5_0", 32, 22, q5_0},
    {DType::Q5_1, "Q5_1", 32, 24, q5_1},
    {DType::Q8_0, "Q8_0", 32, 34, q8_0},
    {DType::Q2_K, "Q2_K", 256, 84, q2_k},
    {DType::Q3_K, "Q3_K", 256, 110, q3_k},
    {DType::Q4_K, "Q4_K", 256, 144, q4_k},
    {DType::Q5_K, "Q5_K", 256, 176, q5_k},
    {DType::Q6_K, "Q6_K", 256, 210, q6_k},
};

}  // namespace

const TypeLayout* type_layout(uint32_t ggml_type) {
  for (const auto& t : kTypes)
    if (uint32_t(t.type) == ggml_type) return &t;
  return nullptr;
}

std::string ggml_type_name(uint32_t type) {
  static const char* names[] = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                                "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
                                "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
                                "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (type < sizeof names / sizeof names[0]) return names[type];
  return "type " + std::to_string(type);
}

std::string readable_types() {
  std::string s;
  for (const auto& t : kTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

}  // namespace attnspec
