// libFuzzer target: loading arbitrary tokenizer.json files, then encoding a fixed text with
// whatever loaded.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("attnspec-fuzz-tok-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  std::ofstream(dir / "tokenizer.json", std::ios::binary).write(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = attnspec::Tokenizer::load(dir);
    tok->encode("Hello world! It's 2024 -- naïve café, 東京 🦙\n\n  x");
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
