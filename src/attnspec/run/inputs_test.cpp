#include <gtest/gtest.h>

#include <fstream>

#include "attnspec/common/error.h"
#include "attnspec/run/inputs.h"

namespace attnspec {
namespace {

std::filesystem::path write(const std::string& name, const std::string& content) {
  auto p = std::filesystem::temp_directory_path() / ("attnspec_ids_" + name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

TEST(TokenIds, JsonArrayAndPlainForms) {
  EXPECT_EQ(read_token_ids(write("a.json", "[1, 2,3 ]\n")), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(read_token_ids(write("b.txt", "4 5\n6,7\t8")), (std::vector<int32_t>{4, 5, 6, 7, 8}));
}

TEST(TokenIds, RejectsBadInput) {
  for (const auto& [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"empty", ""}, {"word", "1 two 3"}, {"neg", "[1, -2]"}, {"float", "[1.5]"}, {"open", "[1, 2"}, {"big", "99999999999"}}) {
    EXPECT_THROW(read_token_ids(write(name, content)), InputError) << name;
  }
}

TEST(Windows, PrefixEveryWindowAndDropTheTail) {
  std::vector<int32_t> stream = {10, 11, 12, 13, 14, 15, 16};
  Windows w = cut_windows(stream, 4, {1}, {}, 0, "x");
  ASSERT_EQ(w.windows.size(), 2u);
  EXPECT_EQ(w.windows[0], (std::vector<int32_t>{1, 10, 11, 12}));
  EXPECT_EQ(w.windows[1], (std::vector<int32_t>{1, 13, 14, 15}));
  EXPECT_EQ(w.dropped_tokens, 1u);
  EXPECT_EQ(cut_windows(stream, 3, {}, {}, 1, "x").windows.size(), 1u);
  EXPECT_THROW(cut_windows(stream, 9, {}, {}, 0, "x"), InputError);
  EXPECT_THROW(cut_windows(stream, 1, {1}, {}, 0, "x"), InputError);
}

}  // namespace
}  // namespace attnspec
