#include "attnspec/tokenize/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/added_tokens.h"
#include "attnspec/tokenize/bpe.h"

namespace attnspec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

Ids tokenize(const BpeModel& model, std::string_view word) {
  Ids out;
  model.tokenize(word, out);
  return out;
}

// a b c, then ab (rank 0), bc (rank 1), abc (rank 2).
BpeModel tiny_model(BpeOptions options = {}) {
  Vocab vocab{{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"<unk>", 6}, {"aa", 7}};
  return BpeModel(vocab, {{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "a"}}, options, "tiny");
}

TEST(Bpe, MergesByRank) {
  const BpeModel model = tiny_model();
  EXPECT_EQ(tokenize(model, "abc"), (Ids{5}));     // ab first (rank 0), then ab+c
  EXPECT_EQ(tokenize(model, "bc"), (Ids{4}));
  EXPECT_EQ(tokenize(model, "cab"), (Ids{2, 3}));
  EXPECT_EQ(tokenize(model, "aaa"), (Ids{7, 0}));  // equal ranks: leftmost first
  EXPECT_EQ(tokenize(model, ""), (Ids{}));
}

TEST(Bpe, LongWordsMergeLikeShortOnes) {
  const BpeModel model = tiny_model();
  std::string word;
  Ids expected;
  for (int i = 0; i < 500; ++i) {
    word += "abcaa";
    expected.insert(expected.end(), {5, 7});
  }
  EXPECT_EQ(tokenize(model, word), expected);
  WordCache cache;
  Ids cached;
  model.tokenize(word, cached, cache);
  EXPECT_EQ(cached, expected);
}

TEST(Bpe, UnknownCharacters) {
  EXPECT_EQ(tokenize(tiny_model(), "axc"), (Ids{0, 2}));  // no unk token: dropped
  EXPECT_EQ(tokenize(tiny_model(), "axb"), (Ids{3}));     // ... and its neighbours merge
  BpeOptions unk;
  unk.unk_token = "<unk>";
  EXPECT_EQ(tokenize(tiny_model(unk), "axyb"), (Ids{0, 6, 6, 1}));
  unk.fuse_unk = true;
  EXPECT_EQ(tokenize(tiny_model(unk), "axyb"), (Ids{0, 6, 1}));
}

TEST(Bpe, ByteFallback) {
  Vocab vocab{{"<unk>", 0}, {"a", 1}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab.emplace(name, 2 + b);
  }
  BpeOptions options;
  options.byte_fallback = true;
  options.unk_token = "<unk>";
  const BpeModel model(vocab, {}, options, "bytes");
  EXPECT_EQ(tokenize(model, "a\u00e9"), (Ids{1, 2 + 0xC3, 2 + 0xA9}));
}

TEST(Bpe, IgnoreMergesEmitsVocabularyWordsWhole) {
  Vocab vocab{{"a", 0}, {"b", 1}, {"ab", 2}, {"abab", 3}};
  BpeOptions options;
  options.ignore_merges = true;
  const BpeModel model(vocab, {{"a", "b"}}, options, "t");
  EXPECT_EQ(tokenize(model, "abab"), (Ids{3}));  // no merge ab+ab exists
  EXPECT_EQ(tokenize(model, "aba"), (Ids{2, 0}));
}

TEST(Bpe, MergeWithUnknownTokenIsAnInputError) {
  Vocab vocab{{"a", 0}, {"b", 1}};
  EXPECT_THROW(BpeModel(vocab, {{"a", "c"}}, {}, "m"), InputError);
  EXPECT_THROW(BpeModel(vocab, {{"a", "b"}}, {}, "m"), InputError);  // "ab" missing
}

TEST(AddedTokens, LeftmostLongestWithStripAndSingleWord) {
  std::vector<AddedToken> tokens = {{"<s>", 1}, {"<s>x", 2}, {"<mask>", 3}, {"word", 4}};
  tokens[2].lstrip = tokens[2].rstrip = true;
  tokens[3].single_word = true;
  std::vector<std::string> patterns;
  for (const auto& t : tokens) patterns.push_back(t.content);
  const AddedTokenMatcher matcher(tokens, patterns);
  auto split = [&](std::string_view text) {
    std::vector<std::tuple<std::string, int32_t>> out;
    for (const auto& s : matcher.split(text)) out.emplace_back(std::string(text.substr(s.begin, s.end - s.begin)), s.id);
    return out;
  };
  using V = std::vector<std::tuple<std::string, int32_t>>;
  EXPECT_EQ(split("a<s>xb<s>"), (V{{"a", -1}, {"<s>x", 2}, {"b", -1}, {"<s>", 1}}));
  EXPECT_EQ(split("hi  <mask>\t there"), (V{{"hi", -1}, {"  <mask>\t ", 3}, {"there", -1}}));
  EXPECT_EQ(split("a word, swordfish word"), (V{{"a ", -1}, {"word", 4}, {", swordfish ", -1}, {"word", 4}}));
  EXPECT_EQ(split(""), (V{}));
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("attnspec_tokenizer_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

json tiny_json() {
  return json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<eos>", "special": true, "normalized": false,
                      "lstrip": false, "rstrip": false, "single_word": false}],
    "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<eos>", "type_id": 0}}],
      "special_tokens": {"<eos>": {"id": "<eos>", "ids": [3], "tokens": ["<eos>"]}}},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<eos>": 3}, "merges": ["a b"]}})");
}

std::string load_error(const fs::path& dir) {
  try {
    Tokenizer::load(dir);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizer, LoadsAHandMadeTokenizerJson) {
  const fs::path dir = temp_dir("tiny");
  std::ofstream(dir / "tokenizer.json") << tiny_json().dump();
  EXPECT_TRUE(Tokenizer::present(dir));
  const auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("ab ba<eos>a"), (Ids{2, 1, 0, 3, 0}));
  EXPECT_EQ(tok->prefix_special(), Ids{});
  EXPECT_EQ(tok->suffix_special(), Ids{3});
  EXPECT_NE(tok->describe().find("tokenizer.json"), std::string::npos);
  // The pair form of merges gives the same tokenizer.
  json pairs = tiny_json();
  pairs["model"]["merges"] = json::parse(R"([["a", "b"]])");
  std::ofstream(dir / "tokenizer.json") << pairs.dump();
  EXPECT_EQ(Tokenizer::load(dir)->encode("abab"), (Ids{2, 2}));
}

TEST(Tokenizer, BadFilesAreInputErrorsNamingTheFile) {
  const fs::path dir = temp_dir("bad");
  EXPECT_NE(load_error(dir).find("no tokenizer files"), std::string::npos);
  EXPECT_FALSE(Tokenizer::present(dir));
  const std::string file = (dir / "tokenizer.json").string();
  auto error_for = [&](const std::string& content) {
    std::ofstream(dir / "tokenizer.json", std::ios::trunc) << content;
    return load_error(dir);
  };
  EXPECT_EQ(error_for("{ broken").rfind(file + ": malformed JSON", 0), 0u);
  json j = tiny_json();
  j["model"]["type"] = "Unigram";
  EXPECT_EQ(error_for(j.dump()), file + ": unsupported model type 'Unigram' (supported: BPE, WordPiece)");
  j = tiny_json();
  j["model"]["merges"] = json::parse(R"(["a x"])");
  EXPECT_NE(error_for(j.dump()).find("'x', which is not in the vocabulary"), std::string::npos);
  j = tiny_json();
  j["pre_tokenizer"] = json::parse(R"({"type": "UnicodeScripts"})");
  EXPECT_NE(error_for(j.dump()).find("unsupported pre-tokenizer type 'UnicodeScripts'"), std::string::npos);
  j = tiny_json();
  j["normalizer"] = json::parse(R"({"type": "Precompiled"})");
  EXPECT_NE(error_for(j.dump()).find("unsupported normalizer type 'Precompiled'"), std::string::npos);
}

TEST(Tokenizer, ReferenceFamiliesSayHelloWorld) {
  const fs::path root = fs::path(ATTNSPEC_SHARED_DIR) / "tokenizers";
  ASSERT_TRUE(fs::exists(root)) << "reference data not found: " << root;
  const std::pair<const char*, Ids> cases[] = {
      {"gpt2", {15496, 995}}, {"llama3", {9906, 1917}}, {"qwen2", {9707, 1879}}, {"mistral", {22557, 1526}}};
  for (const auto& [family, ids] : cases) {
    const auto tok = Tokenizer::load(root / family);
    EXPECT_EQ(tok->encode("Hello world"), ids) << family;
  }
  EXPECT_EQ(Tokenizer::load(root / "llama3")->prefix_special(), Ids{128000});
  EXPECT_EQ(Tokenizer::load(root / "mistral")->encode("1234567"),
            (Ids{28705, 28740, 28750, 28770, 28781, 28782, 28784, 28787}));
}

}  // namespace
}  // namespace attnspec
