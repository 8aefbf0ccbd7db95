// libFuzzer target: the safetensors header parser and the dtype widening on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tensors = attnspec::parse_safetensors(reinterpret_cast<const std::byte*>(data), size, "fuzz");
    std::vector<float> out;
    for (const auto& t : tensors) {  // every accepted tensor must be readable in full
      out.resize(static_cast<size_t>(t.numel()));
      t.to_float32(out.data(), 0, out.size());
    }
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
