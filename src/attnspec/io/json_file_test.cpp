#include <gtest/gtest.h>

#include <fstream>

#include "attnspec/common/error.h"
#include "attnspec/io/json_file.h"

namespace attnspec {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonFields, TypedAccessAndClearErrors) {
  const nlohmann::json j = nlohmann::json::parse(R"({"a": 4, "b": 4096.0, "c": 1.5, "s": "x", "t": true, "z": null, "n": -1})");
  const JsonFields f(j, "config.json");
  EXPECT_EQ(f.integer("a"), 4);
  EXPECT_EQ(f.integer("b"), 4096);  // integral floats are accepted
  EXPECT_EQ(f.integer("missing", 7), 7);
  EXPECT_EQ(f.integer("z", 7), 7);  // null counts as absent
  EXPECT_DOUBLE_EQ(f.number("a"), 4.0);
  EXPECT_TRUE(f.boolean("t", false));
  EXPECT_EQ(f.positive({"missing", "a"}), 4);
  EXPECT_EQ(message_of([&] { f.integer("c"); }), "config.json: field 'c' must be an integer, not 1.5");
  // Found by fuzzing: a float beyond int64 must be an error, not an undefined conversion.
  const nlohmann::json big = nlohmann::json::parse(R"({"h": 2.2222222222222224e+23, "w": 5000000000})");
  EXPECT_NE(message_of([&] { JsonFields(big, "config.json").integer("h"); }).find("must be an integer"), std::string::npos);
  EXPECT_NE(message_of([&] { JsonFields(big, "config.json").positive({"w"}); }).find("implausibly large"), std::string::npos);
  EXPECT_EQ(message_of([&] { f.integer("q"); }), "config.json: missing field 'q'");
  EXPECT_EQ(message_of([&] { f.string("a"); }), "config.json: field 'a' must be a string, not 4");
  EXPECT_EQ(message_of([&] { f.positive({"n"}); }), "config.json: field 'n' must be positive, not -1");
  EXPECT_EQ(message_of([&] { f.boolean("s", false); }), "config.json: field 's' must be true or false, not \"x\"");
}

TEST(JsonFile, MalformedAndMissingFiles) {
  const auto p = std::filesystem::temp_directory_path() / "attnspec_bad.json";
  std::ofstream(p) << "{\"a\": [1, 2";
  const std::string m = message_of([&] { read_json_file(p); });
  EXPECT_NE(m.find(p.string() + ": malformed JSON"), std::string::npos) << m;
  EXPECT_NE(message_of([&] { read_json_file("/nonexistent/config.json"); }).find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace attnspec
