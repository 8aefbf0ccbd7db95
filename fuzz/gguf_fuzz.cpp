// libFuzzer target: the GGUF parser (header, metadata values, tensor infos) and the widening of
// every tensor it accepts, in every block format and through row permutations; and llama2.c's tokenizer parser.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/gguf.h"
#include "attnspec/io/safetensors.h"
#include "attnspec/tokenize/file_tokenizers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  try {
    const attnspec::GgufFile f = attnspec::parse_gguf(bytes, size, "fuzz");
    std::vector<float> out;
    for (const auto& info : f.tensors) {  // every accepted tensor must be readable in full
      attnspec::TensorView t;
      t.dtype = attnspec::DType(info.type);  // parse_gguf accepted it: a type with a layout
      for (auto it = info.ne.rbegin(); it != info.ne.rend(); ++it) t.shape.push_back(int64_t(*it));
      t.data = bytes + f.data_offset + info.offset;
      t.nbytes = info.nbytes;
      if (t.numel() > (1 << 20)) continue;  // bounded work per input
      out.resize(static_cast<size_t>(t.numel()));
      t.to_float32(out.data(), 0, out.size());
      if (t.shape.size() == 2 && t.shape[0] % 2 == 0) {  // and through a pair permutation
        t.row_perm = attnspec::rotate_half_rows(1, t.shape[0]);
        t.to_float32(out.data(), 0, out.size());
      }
    }
  } catch (const attnspec::InputError&) {
  }
  try {
    auto tok = attnspec::parse_llama2c_tokenizer(bytes, size, "fuzz");
    tok->encode("Once upon a time, \xC3\xBC 123");
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
