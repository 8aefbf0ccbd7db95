#include "attnspec/tokenize/unicode.h"

#include <gtest/gtest.h>

#include <set>

#include "attnspec/tokenize/regex.h"

namespace attnspec {
namespace {

TEST(ByteToUnicode, IsGpt2sReversibleMap) {
  const auto& map = unicode::byte_to_unicode();
  EXPECT_EQ(map['A'], "A");
  EXPECT_EQ(map['~'], "~");
  EXPECT_EQ(map[0xE9], "\u00e9");
  EXPECT_EQ(map[' '], "\u0120");   // Ġ
  EXPECT_EQ(map['\n'], "\u010a");  // Ċ
  EXPECT_EQ(map[0], "\u0100");
  EXPECT_EQ(map[0xAD], "\u0143");  // soft hyphen, the last remapped byte
  std::set<std::string> distinct(map.begin(), map.end());
  EXPECT_EQ(distinct.size(), 256u);
}

TEST(Utf8, DecodesAndEncodesCodePoints) {
  for (char32_t c : {U'a', U'\u00e9', U'\u20ac', U'\U0001F44D', U'\U0010FFFF'}) {
    const std::string s = unicode::to_utf8(c);
    const char* p = s.data();
    EXPECT_EQ(unicode::next_code_point(p), c);
    EXPECT_EQ(p, s.data() + s.size());
    EXPECT_EQ(unicode::sequence_length(static_cast<unsigned char>(s[0])), static_cast<int>(s.size()));
  }
}

TEST(CharacterClasses, MatchRust) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\v', U'\f', U'\r', U'\u0085', U'\u00a0', U'\u2028', U'\u3000'})
    EXPECT_TRUE(unicode::is_white_space(c)) << static_cast<uint32_t>(c);
  for (char32_t c : {U'\u180e', U'\u200b', U'\ufeff', U'\x1c', U'a'})
    EXPECT_FALSE(unicode::is_white_space(c)) << static_cast<uint32_t>(c);
  EXPECT_TRUE(unicode::is_numeric(U'\u0663'));  // Arabic-Indic three
  EXPECT_TRUE(unicode::is_numeric(U'\u00bd'));  // ½ (No)
  EXPECT_FALSE(unicode::is_numeric(U'x'));
  EXPECT_TRUE(unicode::is_word_char(U'\u0301'));
  EXPECT_TRUE(unicode::is_word_char(U'_'));
  EXPECT_FALSE(unicode::is_word_char(U'-'));
  EXPECT_TRUE(unicode::is_punctuation(U'\u2e42'));
  EXPECT_FALSE(unicode::is_punctuation(U'\u061d'));  // Unicode 14: unknown to tokenizers' table
}

TEST(Normalization, Nfc) {
  using unicode::normalize;
  using unicode::NormalForm;
  EXPECT_EQ(normalize("plain ascii", NormalForm::NFC), "plain ascii");
  EXPECT_EQ(normalize("e\u0301", NormalForm::NFC), "\u00e9");
  EXPECT_EQ(normalize("\u212b", NormalForm::NFC), "\u00c5");                // Ångström sign
  EXPECT_EQ(normalize("\u1100\u1161\u11a8", NormalForm::NFC), "\uac01");    // Hangul jamo
  EXPECT_EQ(normalize("a\u0307\u0323", NormalForm::NFC), "\u1ea1\u0307");  // reordered, then composed
  EXPECT_EQ(normalize("x e\u0301 q\u0301", NormalForm::NFC), "x \u00e9 q\u0301");
  EXPECT_EQ(normalize("\u0958", NormalForm::NFC), "\u0915\u093c");          // composition exclusion
  EXPECT_EQ(normalize("\u0301a", NormalForm::NFC), "\u0301a");
  EXPECT_EQ(normalize("\uFB01", NormalForm::NFC), "\uFB01");
  EXPECT_EQ(normalize("\uFB01", NormalForm::NFKC), "fi");
  EXPECT_EQ(normalize("\u00e9", NormalForm::NFD), "e\u0301");
  // U+1DF6 (Unicode 10) is unassigned for tokenizers' 9.0 tables: it blocks nothing, moves nowhere.
  EXPECT_EQ(normalize("a\u1df6\u0316", NormalForm::NFC), "a\u1df6\u0316");
  EXPECT_EQ(normalize("a\u1df5\u0316", NormalForm::NFC), "a\u0316\u1df5");
}

TEST(Regex, WhitespaceIsOnigurumasWhiteSpace) {
  const Regex re(R"(\s+|\S+)");
  const auto m = re.find_all("a\u180eb \u3000c");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0], std::make_pair(size_t{0}, size_t{5}));  // U+180E is not a space
  EXPECT_EQ(Regex::translate(R"([^\s\p{L}])").find("\\s"), std::string::npos);
}

TEST(Regex, Gpt2PatternSplitsAsExpected) {
  const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  const std::string text = "Hello's  world 123!";
  std::vector<std::string> pieces;
  for (auto [b, e] : re.find_all(text)) pieces.push_back(text.substr(b, e - b));
  EXPECT_EQ(pieces, (std::vector<std::string>{"Hello", "'s", " ", " world", " 123", "!"}));
}

// Every code point, one after another: the translated classes match exactly the characters of
// unicode_tables.inc, whatever Unicode version this PCRE2 has (a newer PCRE2 than `tokenizers`'
// Oniguruma would make this fail).
TEST(Regex, ClassesMatchTokenizersTablesOnEveryCodePoint) {
  std::string all;
  std::vector<char32_t> at_byte;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    at_byte.resize(all.size() + 1, 0);
    at_byte[all.size()] = c;
    unicode::append_utf8(all, c);
  }
  const std::pair<const char*, unicode::RegexClass> cases[] = {
      {R"(\p{L})", unicode::RegexClass::Letter}, {R"(\pN)", unicode::RegexClass::Number},
      {R"(\w)", unicode::RegexClass::Word}, {R"([^\s\p{L}\p{N}])", unicode::RegexClass::Letter}};
  for (const auto& [pattern, cls] : cases) {
    const bool negated = pattern[0] == '[';
    std::vector<bool> matched(0x110000, false);
    for (auto [b, e] : Regex(pattern).find_all(all)) matched[at_byte[b]] = true;
    size_t wrong = 0;
    for (char32_t c = 0; c < 0x110000; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      bool expected = unicode::in_regex_class(cls, c);
      if (negated)
        expected = !unicode::is_white_space(c) && !unicode::in_regex_class(unicode::RegexClass::Letter, c) &&
                   !unicode::in_regex_class(unicode::RegexClass::Number, c);
      if (matched[c] != expected && wrong++ < 5) ADD_FAILURE() << pattern << " at U+" << std::hex << static_cast<uint32_t>(c);
    }
    EXPECT_EQ(wrong, 0u) << pattern;
  }
  const std::string rust_word = "[" + Regex::class_items(unicode::RegexClass::RustWord) + "]";
  size_t count = Regex(rust_word).find_all(all).size(), expected = 0;
  for (char32_t c = 0; c < 0x110000; ++c) expected += unicode::in_regex_class(unicode::RegexClass::RustWord, c);
  EXPECT_EQ(count, expected);
}

// Characters newer than PCRE2 10.42 / ICU 72 (Unicode 14.0 / 15.0) that `tokenizers` knows.
TEST(Regex, SplitsNewCharactersLikeTokenizers) {
  const Regex llama3(R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  auto pieces = [&](const std::string& text) {
    std::vector<std::string> out;
    for (auto [b, e] : llama3.find_all(text)) out.push_back(text.substr(b, e - b));
    return out;
  };
  // U+10D40 GARAY DIGIT ZERO (Unicode 16.0) is \p{N}; U+1D2C0 KAKTOVIK NUMERAL ZERO (15.0) too.
  EXPECT_EQ(pieces(" \U00010D40\U00010D401"), (std::vector<std::string>{" ", "\U00010D40\U00010D401"}));
  EXPECT_EQ(pieces("x\U0001D2C0 y"), (std::vector<std::string>{"x", "\U0001D2C0", " y"}));
  EXPECT_EQ(pieces("a\U00010D50b"), (std::vector<std::string>{"a\U00010D50b"}));  // a Garay letter
  EXPECT_TRUE(unicode::is_numeric(U'\U00010D40'));
  EXPECT_TRUE(unicode::is_numeric(U'\U00011DE0'));  // Rust's std is newer still (Unicode 17.0)
  // Oniguruma's \w holds U+00B2; Rust regex's (the Whitespace pre-tokenizer's) does not.
  EXPECT_EQ(Regex(R"(\w+)").find_all("x\u00b2").size(), 1u);
  EXPECT_FALSE(unicode::is_word_char(U'\u00b2'));
}

}  // namespace
}  // namespace attnspec
