#include "attnspec/tokenize/text.h"

#include <gtest/gtest.h>

#include <fstream>

#include "attnspec/common/error.h"

namespace attnspec {
namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  const fs::path dir = ATTNSPEC_SHARED_DIR;
  if (!fs::exists(dir / "corpus")) ADD_FAILURE() << "reference data not found: " << dir / "corpus";
  return dir;
}

fs::path write_temp(const std::string& name, const std::string& bytes) {
  const fs::path path = fs::temp_directory_path() / ("attnspec_text_test_" + name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string error_of(const fs::path& path, const TextOptions& options = {}) {
  try {
    read_text_file(path, options);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Utf8, AcceptsValidText) {
  EXPECT_EQ(first_invalid_utf8(""), std::string::npos);
  EXPECT_EQ(first_invalid_utf8("plain ASCII text, long enough for the fast path"), std::string::npos);
  EXPECT_EQ(first_invalid_utf8("é € 𝄞 \u00a0 \U0010FFFF \uD7FF \uE000"), std::string::npos);
}

TEST(Utf8, RejectsMalformedSequencesAtTheirOffset) {
  EXPECT_EQ(first_invalid_utf8("abc\xff"), 3u);
  EXPECT_EQ(first_invalid_utf8("\x80"), 0u);             // lone continuation byte
  EXPECT_EQ(first_invalid_utf8("ab\xc0\xaf"), 2u);       // overlong, two bytes
  EXPECT_EQ(first_invalid_utf8("\xc1\xbf"), 0u);
  EXPECT_EQ(first_invalid_utf8("\xe0\x9f\xbf"), 0u);     // overlong, three bytes
  EXPECT_EQ(first_invalid_utf8("\xf0\x8f\xbf\xbf"), 0u); // overlong, four bytes
  EXPECT_EQ(first_invalid_utf8("x\xed\xa0\x80"), 1u);    // surrogate U+D800
  EXPECT_EQ(first_invalid_utf8("\xed\xbf\xbf"), 0u);     // surrogate U+DFFF
  EXPECT_EQ(first_invalid_utf8("\xf4\x90\x80\x80"), 0u); // U+110000
  EXPECT_EQ(first_invalid_utf8("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(first_invalid_utf8("ok\xe2\x82"), 2u);       // truncated at the end
  EXPECT_EQ(first_invalid_utf8("ok\xe2\x82z"), 2u);      // truncated before ASCII
  EXPECT_EQ(first_invalid_utf8("0123456789abcdef\xe2\x28\xa1"), 16u);
}

TEST(Gutenberg, KeepsTheTextStrictlyBetweenTheMarkerLines) {
  const std::string text =
      "Title\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody 1\nbody 2\n"
      "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicense\n";
  bool found = false;
  EXPECT_EQ(strip_gutenberg(text, &found), "body 1\nbody 2\n");
  EXPECT_TRUE(found);
}

TEST(Gutenberg, OlderWordingAndCrlf) {
  const std::string text =
      "Header\r\n*** START OF THIS PROJECT GUTENBERG EBOOK ALICE ***\r\n\r\nAlice\r\n"
      "*** END OF THIS PROJECT GUTENBERG EBOOK ALICE ***\r\nEnd\r\n";
  EXPECT_EQ(strip_gutenberg(text), "\r\nAlice\r\n");
}

TEST(Gutenberg, WithoutBothMarkersTheTextIsUnchanged) {
  bool found = true;
  EXPECT_EQ(strip_gutenberg("no markers\n", &found), "no markers\n");
  EXPECT_FALSE(found);
  const std::string only_start = "*** START OF THE PROJECT GUTENBERG EBOOK X ***\nrest\n";
  EXPECT_EQ(strip_gutenberg(only_start, &found), only_start);
  EXPECT_FALSE(found);
  // A marker must begin its line.
  const std::string quoted = "see *** START OF THE PROJECT GUTENBERG EBOOK X\nx\n*** END OF THE PROJECT GUTENBERG EBOOK\n";
  EXPECT_EQ(strip_gutenberg(quoted, &found), quoted);
}

TEST(ReadTextFile, KeepsBomAndEmptyTextRejectsBadInput) {
  // U+FEFF is a character of the text, as Hugging Face tokenizers see it; an empty text has no tokens.
  EXPECT_EQ(read_text_file(write_temp("bom.txt", "\xEF\xBB\xBFhello\r\n")), "\xEF\xBB\xBFhello\r\n");
  EXPECT_EQ(read_text_file(write_temp("bomonly.txt", "\xEF\xBB\xBF")), "\xEF\xBB\xBF");
  EXPECT_EQ(read_text_file(write_temp("empty.txt", "")), "");
  const std::string hollow = "h\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\n";
  EXPECT_EQ(read_text_file(write_temp("hollow.txt", hollow)), "");
  EXPECT_NE(error_of(write_temp("bad.txt", "hello \xff")).find("bad.txt: invalid UTF-8 at byte offset 6"),
            std::string::npos);
  EXPECT_NE(error_of(write_temp("nul.txt", std::string("a\0b", 3))).find("NUL byte at byte offset 1"),
            std::string::npos);
  EXPECT_NE(error_of(fs::temp_directory_path() / "attnspec_no_such_file.txt").find("cannot open"),
            std::string::npos);
  TextOptions always;
  always.strip_gutenberg = 1;
  EXPECT_NE(error_of(write_temp("plain.txt", "text\n"), always).find("marker"), std::string::npos);
}

TEST(ReadTextFile, StripsTheRealBooks) {
  const fs::path corpus = shared_dir() / "corpus";
  for (const char* name : {"pg11.txt", "pg1342.txt", "pg84.txt", "pg2701.txt", "pg98.txt"}) {
    const fs::path book = corpus / name;
    ASSERT_TRUE(fs::exists(book)) << "missing " << book;
    TextOptions raw;
    raw.strip_gutenberg = 0;
    const std::string whole = read_text_file(book, raw);
    const std::string body = read_text_file(book);
    EXPECT_EQ(whole.starts_with("\xEF\xBB\xBF"), std::string(name) == "pg11.txt") << name;  // as stored
    EXPECT_FALSE(body.starts_with("\xEF\xBB\xBF")) << name;  // the BOM went with the header
    EXPECT_GT(body.size(), 100000u) << name;
    EXPECT_LT(body.size(), whole.size()) << name;
    EXPECT_EQ(body.find("PROJECT GUTENBERG EBOOK"), std::string::npos) << name;
    EXPECT_NE(whole.find(body), std::string::npos) << name;
  }
  TextOptions raw;
  raw.strip_gutenberg = 0;
  const std::string alice = read_text_file(corpus / "pg11.txt", raw);
  EXPECT_NE(alice.find("*** START OF THIS PROJECT GUTENBERG EBOOK"), std::string::npos);
  EXPECT_NE(read_text_file(corpus / "pg11.txt").find("\r\n"), std::string::npos);  // CRLF kept
}

}  // namespace
}  // namespace attnspec
