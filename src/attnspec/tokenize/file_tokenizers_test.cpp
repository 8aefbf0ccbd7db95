// Tokenizers built from GGUF tokenizer metadata held as data (io/gguf.h), without a file.
#include <gtest/gtest.h>

#include "attnspec/common/error.h"
#include "attnspec/io/gguf.h"
#include "attnspec/tokenize/file_tokenizers.h"

namespace attnspec {
namespace {

TEST(GgufTokenizer, SentencePieceFromData) {
  GgufTokenizerData d;
  d.model = GgufTokenizerModel::Llama;
  d.tokens = {"<unk>", "<s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a", "<ctl>"};
  d.scores = {0, 0, -3, -2, -1, 0};
  d.token_types = {2, 3, 1, 1, 1, 3};
  d.bos = 1;
  d.add_bos = true;
  const auto tok = make_gguf_tokenizer(d, "t.gguf");
  EXPECT_EQ(tok->prefix_special(), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok->suffix_special().empty());
  EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{4}));  // dummy prefix space, then the best merge
  EXPECT_EQ(tok->encode("a<ctl>a"), (std::vector<int32_t>{4, 5, 4}));  // control tokens matched whole
  EXPECT_EQ(tok->describe(), "SentencePiece score-merge BPE, 6 tokens (GGUF)");
}

TEST(GgufTokenizer, ByteLevelBpeFromData) {
  GgufTokenizerData d;
  d.model = GgufTokenizerModel::Gpt2;
  d.tokens = {"a", "b", "ab"};
  d.merges = {"a b"};
  const auto tok = make_gguf_tokenizer(d, "t.gguf");
  EXPECT_TRUE(tok->prefix_special().empty());
  EXPECT_EQ(tok->encode("abba"), (std::vector<int32_t>{2, 1, 0}));
  EXPECT_EQ(tok->describe(), "byte-level BPE, 3 tokens (GGUF, pre default)");
  d.pre = "falcon";
  EXPECT_THROW(make_gguf_tokenizer(d, "t.gguf"), InputError);
}

}  // namespace
}  // namespace attnspec
