// The element types of GGML/GGUF: each block format's layout and its dequantizer, in one table.
//
// Each dequantizer computes exactly what gguf-py's `gguf.quants.dequantize` computes (the tests
// compare them bit for bit): the same float32 operations in the same order, e.g. Q4_1's (d * q) + m,
// never a fused multiply-add (this file is compiled with -ffp-contract=off). A block's scales are
// IEEE half floats (f16) unless said otherwise; "q" is the block's small integer for one value.
#include "attnspec/io/ggml_types.h"

#include <cstring>

#include "iq_grids.h"  // generated from gguf-py by scripts/gen_iq_grids.py (see CMakeLists.txt)

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

// --- Ternary types: values in {-1, 0, 1} times one scale per 256 values ------------------------

// TQ1_0 (54 bytes): qs[48], qh[4], d. Each byte packs base-3 digits as a fixed-point fraction:
// digit n of byte x is (uint8(x * 3^n) * 3) >> 8 (the product wrapping mod 256), q = digit - 1.
// qs byte m < 32 holds values 32n + m (n = 0..4), qs byte 32 + m holds values 160 + 16n + m
// (n = 0..4), qh byte m holds values 240 + 4n + m (n = 0..3); value = d * q.
void tq1_0(const std::byte* b, size_t n, float* out) {
  constexpr uint8_t pow3[5] = {1, 3, 9, 27, 81};
  auto digit = [](uint8_t x, uint8_t p) { return int((unsigned(uint8_t(x * p)) * 3) >> 8) - 1; };
  for (size_t k = 0; k < n; ++k, b += 54, out += QK_K) {
    const std::byte *qs = b, *qh = b + 48;
    const float d = f16(b + 52);
    for (int p = 0; p < 5; ++p)
      for (int m = 0; m < 32; ++m) out[32 * p + m] = d * float(digit(u8(qs + m), pow3[p]));
    for (int p = 0; p < 5; ++p)
      for (int m = 0; m < 16; ++m) out[160 + 16 * p + m] = d * float(digit(u8(qs + 32 + m), pow3[p]));
    for (int p = 0; p < 4; ++p)
      for (int m = 0; m < 4; ++m) out[240 + 4 * p + m] = d * float(digit(u8(qh + m), pow3[p]));
  }
}

// TQ2_0 (66 bytes): qs[64] (2-bit fields as the K-quants', per 128 values), d; value = d * (q - 1).
void tq2_0(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 66, out += QK_K) {
    const float d = f16(b + 64);
    for (int p = 0; p < QK_K; ++p) {
      const int half = p / 128, j = (p % 128) / 32, l = p % 32;
      out[p] = d * float(int((u8(b + half * 32 + l) >> (2 * j)) & 3) - 1);
    }
  }
}

// --- 4-bit non-linear types: a 4-bit index into a 16-value table per value --------------------

// E2M1 (the 4-bit float of the OCP microscaling formats) values, doubled: kvalues_mxfp4.
constexpr int8_t kValuesMxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
// IQ4_NL and IQ4_XS's non-linear 4-bit values: kvalues_iq4nl.
constexpr int8_t kValuesIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// An E8M0 scale (a bare float32 exponent, 2^(e - 127)) halved, to undo kvalues_mxfp4's doubling:
// 2^(e - 128), subnormal for e < 2 (ggml_e8m0_to_fp32_half).
float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? uint32_t(0x00200000) << e : uint32_t(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// MXFP4 (17 bytes): e (E8M0), qs[16] (4-bit as Q4_0: low nibble value j, high j + 16);
// value = e8m0_half(e) * kvalues_mxfp4[q].
void mxfp4(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 17, out += 32) {
    const float d = e8m0_half(u8(b));
    for (int j = 0; j < 16; ++j) {
      out[j] = d * float(kValuesMxfp4[u8(b + 1 + j) & 0x0F]);
      out[j + 16] = d * float(kValuesMxfp4[u8(b + 1 + j) >> 4]);
    }
  }
}

// An unsigned E4M3 scale (4 exponent bits, bias 7, 3 mantissa bits; bit 7 unused) halved, as
// kvalues_mxfp4's doubling needs; the bytes 0x00 and 0x7F are zero.
float ue4m3_half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int e = (x >> 3) & 0x0F;
  const float m = float(x & 7);
  float raw;
  if (e == 0) {
    raw = m * 0x1p-9f;
  } else {  // (1 + m/8) * 2^(e - 7)
    const uint32_t bits = uint32_t(e - 7 + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    raw = (1.0f + m / 8.0f) * scale;
  }
  return raw * 0.5f;
}

// NVFP4 (36 bytes, 64 values): d[4] (unsigned E4M3, one per 16 values), qs[32] (8 bytes per 16
// values: low nibble value i, high i + 8); value = ue4m3_half(d) * kvalues_mxfp4[q].
void nvfp4(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 36, out += 64) {
    for (int s = 0; s < 4; ++s) {
      const float d = ue4m3_half(u8(b + s));
      const std::byte* qs = b + 4 + 8 * s;
      for (int i = 0; i < 8; ++i) {
        out[16 * s + i] = d * float(kValuesMxfp4[u8(qs + i) & 0x0F]);
        out[16 * s + 8 + i] = d * float(kValuesMxfp4[u8(qs + i) >> 4]);
      }
    }
  }
}

// IQ4_NL (18 bytes): d, qs[16] (4-bit as Q4_0); value = d * kvalues_iq4nl[q].
void iq4_nl(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 18, out += 32) {
    const float d = f16(b);
    for (int j = 0; j < 16; ++j) {
      out[j] = d * float(kValuesIq4nl[u8(b + 2 + j) & 0x0F]);
      out[j + 16] = d * float(kValuesIq4nl[u8(b + 2 + j) >> 4]);
    }
  }
}

// IQ4_XS (136 bytes): d, scales_h (u16: bits 2i..2i+1 are the high bits of 32-value group i's
// scale), scales_l[4] (nibbles, low first: the scales' low 4 bits), qs[128] (16 bytes per group,
// 4-bit as Q4_0); value = (d * (scale - 32)) * kvalues_iq4nl[q].
void iq4_xs(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 136, out += QK_K) {
    const float d = f16(b);
    const uint16_t scales_h = load<uint16_t>(b + 2);
    for (int g = 0; g < 8; ++g) {
      const int low = (u8(b + 4 + g / 2) >> (4 * (g % 2))) & 0x0F, high = (scales_h >> (2 * g)) & 3;
      const float dl = d * float((low | high << 4) - 32);
      const std::byte* qs = b + 8 + 16 * g;
      for (int j = 0; j < 16; ++j) {
        out[32 * g + j] = dl * float(kValuesIq4nl[u8(qs + j) & 0x0F]);
        out[32 * g + 16 + j] = dl * float(kValuesIq4nl[u8(qs + j) >> 4]);
      }
    }
  }
}

// --- i-quants: each 8 (or 4) values are a row of a fixed grid, with signs and a scale ----------
// The grids (llama.cpp's iq2xxs_grid etc.) come from iq_grids.h, one packed word per row: value j
// of a row is its byte j. A sign byte's bit j set negates value j of its 8.

uint8_t grid_u8(uint64_t row, int j) { return uint8_t(row >> (8 * j)); }
float sign(unsigned bits, int j) { return (bits >> j) & 1 ? -1.0f : 1.0f; }

// ksigns_iq2xs: 7 stored sign bits, the 8th making the count of minus signs even (i | parity << 7).
constexpr auto kSigns = [] {
  struct { uint8_t v[128]; } t{};
  for (int i = 0; i < 128; ++i) {
    int parity = 0;
    for (int x = i; x; x >>= 1) parity ^= x & 1;
    t.v[i] = uint8_t(i | parity << 7);
  }
  return t;
}();

// IQ2_XXS (66 bytes): d, then per 32 values two u32: aux0 (bytes: 4 rows of iq2xxs_grid, 8 values
// each), aux1 (bits 7l..7l+6: ksigns index of row l; bits 28..31: scale s);
// value = ((d * (0.5 + s)) * 0.25) * grid * sign.
void iq2_xxs(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 66, out += QK_K) {
    const float d = f16(b);
    for (int g = 0; g < 8; ++g) {
      const std::byte* q = b + 2 + 8 * g;
      const uint32_t aux1 = load<uint32_t>(q + 4);
      const float db = d * (0.5f + float(aux1 >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        const uint64_t row = iq_grids::kIq2xxsGrid[u8(q + l)];
        const unsigned signs = kSigns.v[(aux1 >> (7 * l)) & 127];
        for (int j = 0; j < 8; ++j) out[32 * g + 8 * l + j] = db * float(grid_u8(row, j)) * sign(signs, j);
      }
    }
  }
}

// IQ2_XS (74 bytes): d, qs[32] u16 (per 8 values: bits 0..8 a row of iq2xs_grid, bits 9..15 a
// ksigns index), scales[8] (nibbles, low first: s per 16 values);
// value = ((d * (0.5 + s)) * 0.25) * grid * sign.
void iq2_xs(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 74, out += QK_K) {
    const float d = f16(b);
    for (int i = 0; i < 32; ++i) {
      const int s = (u8(b + 66 + i / 4) >> (4 * ((i / 2) % 2))) & 0x0F;
      const float db = d * (0.5f + float(s)) * 0.25f;
      const uint16_t q = load<uint16_t>(b + 2 + 2 * i);
      const uint64_t row = iq_grids::kIq2xsGrid[q & 511];
      const unsigned signs = kSigns.v[q >> 9];
      for (int j = 0; j < 8; ++j) out[8 * i + j] = db * float(grid_u8(row, j)) * sign(signs, j);
    }
  }
}

// IQ2_S (82 bytes): d, qs[32] (low 8 bits of a row of iq2s_grid per 8 values), signs[32] (one
// byte per 8 values), qh[8] (bits 2m..2m+1 of byte i: bits 8..9 of row 4i + m), scales[8]
// (nibbles, low first: s per 16 values); value = ((d * (0.5 + s)) * 0.25) * grid * sign.
void iq2_s(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 82, out += QK_K) {
    const float d = f16(b);
    const std::byte *qs = b + 2, *signs = b + 34, *qh = b + 66, *scales = b + 74;
    for (int i = 0; i < 32; ++i) {
      const int s = (u8(scales + i / 4) >> (4 * ((i / 2) % 2))) & 0x0F;
      const float db = d * (0.5f + float(s)) * 0.25f;
      const int idx = u8(qs + i) | ((u8(qh + i / 4) >> (2 * (i % 4))) & 3) << 8;
      const uint64_t row = iq_grids::kIq2sGrid[idx];
      for (int j = 0; j < 8; ++j) out[8 * i + j] = db * float(grid_u8(row, j)) * sign(u8(signs + i), j);
    }
  }
}

// IQ3_XXS (98 bytes): d, qs[64] (a row of iq3xxs_grid, 4 values, per byte), then per 32 values a
// u32 (bits 7l..7l+6: ksigns index of values 8l..8l+7; bits 28..31: scale s);
// value = ((d * (0.5 + s)) * 0.5) * grid * sign.
void iq3_xxs(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 98, out += QK_K) {
    const float d = f16(b);
    for (int g = 0; g < 8; ++g) {
      const uint32_t aux = load<uint32_t>(b + 66 + 4 * g);
      const float db = d * (0.5f + float(aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const unsigned signs = kSigns.v[(aux >> (7 * l)) & 127];
        for (int h = 0; h < 2; ++h) {
          const uint32_t row = iq_grids::kIq3xxsGrid[u8(b + 2 + 8 * g + 2 * l + h)];
          for (int j = 0; j < 4; ++j)
            out[32 * g + 8 * l + 4 * h + j] = db * float(grid_u8(row, j)) * sign(signs, 4 * h + j);
        }
      }
    }
  }
}

// IQ3_S (110 bytes): d, qs[64] (low 8 bits of a row of iq3s_grid, 4 values, per byte), qh[8]
// (bit m of byte i: bit 8 of row 8i + m), signs[32] (one byte per 8 values), scales[4] (nibbles,
// low first: s per 32 values); value = (d * (1 + 2s)) * grid * sign.
void iq3_s(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 110, out += QK_K) {
    const float d = f16(b);
    const std::byte *qs = b + 2, *qh = b + 66, *signs = b + 74, *scales = b + 106;
    for (int i = 0; i < 64; ++i) {
      const int s = (u8(scales + i / 16) >> (4 * ((i / 8) % 2))) & 0x0F;
      const float db = d * float(1 + 2 * s);
      const int idx = u8(qs + i) | ((u8(qh + i / 8) >> (i % 8)) & 1) << 8;
      const uint32_t row = iq_grids::kIq3sGrid[idx];
      const unsigned sg = u8(signs + i / 2);
      for (int j = 0; j < 4; ++j) out[4 * i + j] = db * float(grid_u8(row, j)) * sign(sg, 4 * (i % 2) + j);
    }
  }
}

// The offset IQ1_S and IQ1_M add to every grid value, its sign chosen per 8 or 32 values.
constexpr float kIq1Delta = 0.125f;

// IQ1_S (50 bytes): d, qs[32] (low 8 bits of a row of iq1s_grid, values -1/0/1, per 8 values),
// qh[8] u16 (per 32 values: bits 3m..3m+2 are bits 8..10 of row m, bits 12..14 a scale s, bit 15
// the delta's sign); value = (d * (2s + 1)) * (grid + delta).
void iq1_s(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 50, out += QK_K) {
    const float d = f16(b);
    for (int g = 0; g < 8; ++g) {
      const uint16_t qh = load<uint16_t>(b + 34 + 2 * g);
      const float dl = d * float(2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
      for (int m = 0; m < 4; ++m) {
        const uint64_t row = iq_grids::kIq1sGrid[u8(b + 2 + 4 * g + m) | ((qh >> (3 * m)) & 7) << 8];
        for (int j = 0; j < 8; ++j) out[32 * g + 8 * m + j] = dl * (float(int8_t(grid_u8(row, j))) + delta);
      }
    }
  }
}

// IQ1_M (56 bytes): qs[32] (as IQ1_S's), qh[16] (per nibble, low first, per 8 values: bits 0..2
// are bits 8..10 of the row, bit 3 the delta's sign), scales[8] as 4 u16: bits 3m..3m+2 of word
// i the scale s of values 16(4i + m) ..+15, and the top nibbles of words 0..3 the 4 nibbles of d
// (an f16, least significant first); value = (d * (2s + 1)) * (grid + delta).
void iq1_m(const std::byte* b, size_t n, float* out) {
  for (size_t k = 0; k < n; ++k, b += 56, out += QK_K) {
    uint16_t sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = load<uint16_t>(b + 48 + 2 * i);
    const float d = half_to_float(uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
                                           (sc[3] & 0xF000)));
    for (int i = 0; i < 32; ++i) {
      const int s = (sc[i / 8] >> (3 * ((i / 2) % 4))) & 7;
      const float dl = d * float(2 * s + 1);
      const int nib = (u8(b + 32 + i / 2) >> (4 * (i % 2))) & 0x0F;
      const float delta = nib & 0x08 ? -kIq1Delta : kIq1Delta;
      const uint64_t row = iq_grids::kIq1sGrid[u8(b + i) | (nib & 7) << 8];
      for (int j = 0; j < 8; ++j) out[8 * i + j] = dl * (float(int8_t(grid_u8(row, j))) + delta);
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
    {DType::TQ1_0, "TQ1_0", 256, 54, tq1_0},
    {DType::TQ2_0, "TQ2_0", 256, 66, tq2_0},
    {DType::MXFP4, "MXFP4", 32, 17, mxfp4},
    {DType::NVFP4, "NVFP4", 64, 36, nvfp4},
    {DType::IQ4_NL, "IQ4_NL", 32, 18, iq4_nl},
    {DType::IQ4_XS, "IQ4_XS", 256, 136, iq4_xs},
    {DType::IQ2_XXS, "IQ2_XXS", 256, 66, iq2_xxs},
    {DType::IQ2_XS, "IQ2_XS", 256, 74, iq2_xs},
    {DType::IQ2_S, "IQ2_S", 256, 82, iq2_s},
    {DType::IQ3_XXS, "IQ3_XXS", 256, 98, iq3_xxs},
    {DType::IQ3_S, "IQ3_S", 256, 110, iq3_s},
    {DType::IQ1_S, "IQ1_S", 256, 50, iq1_s},
    {DType::IQ1_M, "IQ1_M", 256, 56, iq1_m},
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
                                "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4", "NVFP4"};
  if (type < sizeof names / sizeof names[0]) return names[type];
  return "type " + std::to_string(type);
}

std::string readable_types() {
  std::string s;
  for (const auto& t : kTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

}  // namespace attnspec
