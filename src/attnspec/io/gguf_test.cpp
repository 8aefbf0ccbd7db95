// The tokenizer metadata of a GGUF file read as plain data: llama.cpp's defaults, the keys each
// tokenizer model needs, and the checks on ids and lengths.
#include <gtest/gtest.h>

#include "attnspec/common/error.h"
#include "attnspec/io/gguf.h"

namespace attnspec {
namespace {

GgufFile with_metadata(nlohmann::json metadata) {
  GgufFile f;
  for (auto& [key, value] : metadata.items()) f.metadata[key] = value;
  return f;
}

std::string error_of(const GgufFile& f) {
  try {
    gguf_tokenizer_data(f, "t.gguf");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(GgufTokenizerData, LlamaDefaults) {
  const GgufTokenizerData t = gguf_tokenizer_data(
      with_metadata({{"tokenizer.ggml.model", "llama"},
                     {"tokenizer.ggml.tokens", {"<unk>", "<s>", "a"}},
                     {"tokenizer.ggml.bos_token_id", 1}}),
      "t.gguf");
  EXPECT_EQ(t.model, GgufTokenizerModel::Llama);
  EXPECT_EQ(t.tokens, (std::vector<std::string>{"<unk>", "<s>", "a"}));
  EXPECT_EQ(t.bos, 1);
  EXPECT_FALSE(t.eos);
  EXPECT_TRUE(t.add_bos);  // SentencePiece vocabularies add BOS unless the file says otherwise
  EXPECT_TRUE(t.add_space_prefix);
  EXPECT_TRUE(t.scores.empty() && t.token_types.empty());
}

TEST(GgufTokenizerData, Gpt2NeedsMerges) {
  nlohmann::json m = {{"tokenizer.ggml.model", "gpt2"},
                      {"tokenizer.ggml.tokens", {"a", "b", "ab"}},
                      {"tokenizer.ggml.token_type", {1, 1, 3}}};
  EXPECT_EQ(error_of(with_metadata(m)), "t.gguf: GGUF gpt2 tokenizer lacks tokenizer.ggml.merges");
  m["tokenizer.ggml.merges"] = {"a b"};
  const GgufTokenizerData t = gguf_tokenizer_data(with_metadata(m), "t.gguf");
  EXPECT_EQ(t.model, GgufTokenizerModel::Gpt2);
  EXPECT_FALSE(t.add_bos);
  EXPECT_EQ(t.merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(t.token_types, (std::vector<int64_t>{1, 1, 3}));
  EXPECT_EQ(t.pre, "default");
}

TEST(GgufTokenizerData, RefusesInconsistentMetadata) {
  EXPECT_NE(error_of(with_metadata({{"general.architecture", "llama"}})).find("has no tokenizer"), std::string::npos);
  const nlohmann::json base = {{"tokenizer.ggml.model", "llama"},
                               {"tokenizer.ggml.tokens", {"<unk>", "<s>"}},
                               {"tokenizer.ggml.bos_token_id", 1}};
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json m = base;
    m[key] = std::move(value);
    return error_of(with_metadata(m));
  };
  EXPECT_NE(with("tokenizer.ggml.bos_token_id", 2).find("bos_token_id 2 is not a token id"), std::string::npos);
  EXPECT_NE(with("tokenizer.ggml.scores", {0.0}).find("scores and tokens differ in length"), std::string::npos);
  EXPECT_NE(with("tokenizer.ggml.model", "bert").find("'bert' is not supported (llama, gpt2)"), std::string::npos);
  EXPECT_NE(with("tokenizer.ggml.add_eos_token", true).find("add_eos_token is set"), std::string::npos);
  EXPECT_NE(with("tokenizer.ggml.add_bos_token", 1).find("not a bool"), std::string::npos);
}

}  // namespace
}  // namespace attnspec
