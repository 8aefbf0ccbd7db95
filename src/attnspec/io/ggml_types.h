// How tensors are stored: every element type attnspec reads, numbered as GGML numbers them
// (`ggml_type`, the type field of a GGUF tensor), so safetensors' F32/F16/BF16 are the same
// numbers. A type stores each row as blocks of `block` values in `bytes` bytes (1 value for the
// plain types); rows are whole blocks. ggml_types.cpp holds each type's layout and dequantizer in
// one table: that table is the one place that knows a block format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace attnspec {

enum class DType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40,
};

struct TypeLayout {
  DType type;
  const char* name;   // as GGML and gguf-py spell it
  uint32_t block;     // values per block
  uint32_t bytes;     // bytes per block
  // Values of `n_blocks` consecutive blocks, in order, as float32 (block * n_blocks of them).
  void (*to_float)(const std::byte* blocks, size_t n_blocks, float* out);
};

// The layout of a GGML type number, or nullptr when attnspec does not read it.
const TypeLayout* type_layout(uint32_t ggml_type);
inline const TypeLayout& layout(DType t) { return *type_layout(uint32_t(t)); }

// "Q4_K", or "type 42" for a number GGML does not define.
std::string ggml_type_name(uint32_t ggml_type);
// The readable types, for messages: "F32, F16, ..., IQ1_M".
std::string readable_types();

inline const char* dtype_name(DType t) { return layout(t).name; }
// Bytes that `numel` values take (numel a whole number of blocks).
inline uint64_t dtype_bytes(DType t, uint64_t numel) { return numel / layout(t).block * layout(t).bytes; }

}  // namespace attnspec
