// WordPiece, BertNormalizer and BERT's vocab.txt folders, on vocabularies written here. The ids
// of real BERT tokenizers against Hugging Face `tokenizers` are checked in tests/test_bert.py.
#include "attnspec/tokenize/wordpiece.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/pipeline.h"
#include "attnspec/tokenize/tokenizer.h"

namespace attnspec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

// The tokens of a small BERT vocabulary, id = index.
const std::vector<std::string> kTokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un",  "##aff", "##able",
                                          "hello", ",",     "world", "!",     "cafe",   "你",  "好",     "a",
                                          "##b",   "##é",   "e"};

Vocab small_vocab() {
  Vocab v;
  for (size_t i = 0; i < kTokens.size(); ++i) v[kTokens[i]] = static_cast<int32_t>(i);
  return v;
}

Ids tokenize(const WordPieceModel& m, std::string_view word) {
  Ids out;
  m.tokenize(word, out);
  return out;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("attnspec_wp_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(WordPiece, GreedyLongestMatchFromTheLeft) {
  const WordPieceModel m(small_vocab(), {}, "test");
  EXPECT_EQ(tokenize(m, "unaffable"), (Ids{5, 6, 7}));
  EXPECT_EQ(tokenize(m, "hello"), (Ids{8}));
  EXPECT_EQ(tokenize(m, "ab"), (Ids{15, 16}));
  EXPECT_EQ(tokenize(m, "aé"), (Ids{15, 17}));  // steps back by whole characters
  EXPECT_EQ(tokenize(m, ""), (Ids{}));
}

TEST(WordPiece, AWordThatCannotBeCutIsOneUnknown) {
  const WordPieceModel m(small_vocab(), {}, "test");
  EXPECT_EQ(tokenize(m, "unaffablex"), (Ids{1}));  // no "##x": the pieces found so far are dropped
  EXPECT_EQ(tokenize(m, "ba"), (Ids{1}));          // no "b" at the start of a word
  WordPieceOptions short_words;
  short_words.max_input_chars_per_word = 4;
  const WordPieceModel s(small_vocab(), short_words, "test");
  EXPECT_EQ(tokenize(s, "abbb"), (Ids{15, 16, 16, 16}));
  EXPECT_EQ(tokenize(s, "abbbb"), (Ids{1}));  // 5 characters > 4
  EXPECT_EQ(tokenize(s, "aééé"), (Ids{15, 17, 17, 17}));  // characters, not bytes
}

TEST(WordPiece, MissingUnknownTokenIsAnInputError) {
  Vocab v = small_vocab();
  v.erase("[UNK]");
  const WordPieceModel m(std::move(v), {}, "vocab-file");
  EXPECT_EQ(tokenize(m, "hello"), (Ids{8}));
  try {
    tokenize(m, "xyz");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("vocab-file"), std::string::npos) << e.what();
  }
}

TEST(WordPiece, VocabTxtLinesAreIds) {
  const Vocab v = parse_vocab_txt("[PAD]\n[UNK]\r\nhello\n\nx\n");
  EXPECT_EQ(v.at("[PAD]"), 0);
  EXPECT_EQ(v.at("[UNK]"), 1);
  EXPECT_EQ(v.at("hello"), 2);
  EXPECT_EQ(v.at(""), 3);
  EXPECT_EQ(v.at("x"), 4);
  EXPECT_EQ(v.size(), 5u);
}

TEST(BertNormalizer, CleansPadsCjkStripsAccentsAndLowercases) {
  const auto n = make_normalizer(json{{"type", "BertNormalizer"}}, "test");
  std::string s = "Caf\u00e9\tWORLD\x01\u200b\u00ad \u4f60\u597d e\u0301 \u0903";
  n->normalize(s);
  // control (U+0001) and format (U+200B, U+00AD) characters dropped, tab -> space, CJK padded,
  // accents stripped (Mn only: the Mc U+0903 stays), lowercased.
  EXPECT_EQ(s, "cafe world  \u4f60  \u597d  e \u0903");

  const auto keep = make_normalizer(
      json{{"type", "BertNormalizer"}, {"lowercase", false}, {"handle_chinese_chars", false}, {"clean_text", false}},
      "test");
  std::string t = "Caf\u00e9\t\u4f60";
  keep->normalize(t);
  EXPECT_EQ(t, "Caf\u00e9\t\u4f60");  // strip_accents follows lowercase when unset

  EXPECT_THROW(make_normalizer(json{{"type", "BertNormalizer"}, {"lowercase", "yes"}}, "test"), InputError);
}

json bert_tokenizer_json() {
  json vocab = json::object();
  for (size_t i = 0; i < kTokens.size(); ++i) vocab[kTokens[i]] = i;
  json added = json::array();
  for (int i = 0; i < 5; ++i)
    added.push_back({{"id", i}, {"content", kTokens[i]}, {"special", true}, {"normalized", false},
                     {"single_word", false}, {"lstrip", false}, {"rstrip", false}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                          {"strip_accents", nullptr}, {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", json::array({{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}})},
            {"special_tokens", {{"[CLS]", {{"id", "[CLS]"}, {"ids", {2}}, {"tokens", {"[CLS]"}}}},
                                {"[SEP]", {{"id", "[SEP]"}, {"ids", {3}}, {"tokens", {"[SEP]"}}}}}}}},
          {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                     {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
}

TEST(BertTokenizer, TokenizerJson) {
  const fs::path dir = temp_dir("json");
  std::ofstream(dir / "tokenizer.json") << bert_tokenizer_json().dump();
  const auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("Hello, World! [MASK]Unaffable \u4f60\u597dCAF\u00c9 xyz"),
            (Ids{8, 9, 10, 11, 4, 5, 6, 7, 13, 14, 12, 1}));
  EXPECT_EQ(tok->prefix_special(), (Ids{2}));
  EXPECT_EQ(tok->suffix_special(), (Ids{3}));
  EXPECT_NE(tok->describe().find("WordPiece"), std::string::npos);

  json bad = bert_tokenizer_json();
  bad["model"]["max_input_chars_per_word"] = -1;
  std::ofstream(dir / "tokenizer.json") << bad.dump();
  EXPECT_THROW(Tokenizer::load(dir), InputError);
  bad = bert_tokenizer_json();
  bad["model"].erase("vocab");
  std::ofstream(dir / "tokenizer.json") << bad.dump();
  EXPECT_THROW(Tokenizer::load(dir), InputError);
  bad = bert_tokenizer_json();
  bad["model"]["vocab"]["hello"] = "eight";
  std::ofstream(dir / "tokenizer.json") << bad.dump();
  EXPECT_THROW(Tokenizer::load(dir), InputError);
}

TEST(BertTokenizer, VocabTxtFolder) {
  const fs::path dir = temp_dir("txt");
  {
    std::ofstream out(dir / "vocab.txt");
    for (const auto& t : kTokens) out << t << "\n";
  }
  ASSERT_TRUE(Tokenizer::present(dir));
  auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("Hello, World! [MASK]Unaffable"), (Ids{8, 9, 10, 11, 4, 5, 6, 7}));
  EXPECT_EQ(tok->prefix_special(), (Ids{2}));
  EXPECT_EQ(tok->suffix_special(), (Ids{3}));
  EXPECT_NE(tok->describe().find("vocab.txt"), std::string::npos);

  // do_lower_case false keeps the case (and, with it, the accents).
  std::ofstream(dir / "tokenizer_config.json") << R"({"do_lower_case": false})";
  tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("Hello hello"), (Ids{1, 8}));

  std::ofstream(dir / "tokenizer_config.json") << R"({"do_lower_case": "no"})";
  EXPECT_THROW(Tokenizer::load(dir), InputError);
  std::ofstream(dir / "tokenizer_config.json") << R"({"cls_token": "[BOS]"})";
  EXPECT_THROW(Tokenizer::load(dir), InputError);  // not in the vocabulary
}

}  // namespace
}  // namespace attnspec
