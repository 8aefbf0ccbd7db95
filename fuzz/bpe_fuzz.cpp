// libFuzzer target: the four real tokenizers of ../shared/tokenizers encoding arbitrary text (the
// first byte picks the tokenizer). Invalid UTF-8 must be rejected cleanly, never crash.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/tokenizer.h"

#ifndef ATTNSPEC_SHARED_DIR
#define ATTNSPEC_SHARED_DIR "../shared"
#endif

static std::unique_ptr<attnspec::Tokenizer> tokenizers[4];

// Loading the four vocabularies takes seconds under ASan: done once here, outside the per-input
// timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  int i = 0;
  for (const char* name : {"gpt2", "llama3", "qwen2", "mistral"})
    tokenizers[i++] = attnspec::Tokenizer::load(std::string(ATTNSPEC_SHARED_DIR "/tokenizers/") + name);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    tokenizers[data[0] % 4]->encode(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
