// libFuzzer target: config.json parsing and the family descriptions on arbitrary JSON.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"
#include "attnspec/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    attnspec::read_model_config(j, "config.json");
  } catch (const attnspec::InputError&) {
  }
  return 0;
}
