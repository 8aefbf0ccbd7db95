// libFuzzer target: the four real tokenizers of ../shared/tokenizers encoding arbitrary text (the
// first byte picks the tokenizer). Invalid UTF-8 must be rejected cleanly, never crash.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/tokenizer.h"

#ifndef ATTNSPEC_SHARED_DIR
#define ATTNSPEC_SHARED_DIR "../shared"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<attnspec::Tokenizer> tokenizers[4] = {
      attnspec::Tokenizer::load(ATTNSPEC_SHARED_DIR "/tokenizers/gpt2"),
      attnspec::Tokenizer::load(ATTNSPEC_SHARED_DIR "/tokenizers/llama3"),
      attnspec::Tokenizer::load(ATTNSPEC_SHARED_DIR "/tokenizers/qwen2"),
      attnspec::Tokenizer::load(ATTNSPEC_SHARED_DIR "/tokenizers/mistral")};
  if (size == 0) return 0;
  try {
    tokenizers[data[0] % 4]->encode(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
