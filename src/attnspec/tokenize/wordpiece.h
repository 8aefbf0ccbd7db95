// The WordPiece model of `tokenizers` (BERT): each pre-token is cut greedily into the longest
// vocabulary entries from the left, every piece after the first carrying the continuing-subword
// prefix ("##"). A word longer than max_input_chars_per_word characters, or one that cannot be
// cut entirely into vocabulary entries, becomes the single unknown token.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attnspec/tokenize/bpe.h"  // Vocab, WordCache

namespace attnspec {

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

class WordPieceModel {
 public:
  // `source` names the file in errors.
  WordPieceModel(Vocab vocab, WordPieceOptions options, std::string source);

  // Appends the ids of one pre-token. Throws InputError (naming the source) when the word needs
  // the unknown token and the vocabulary lacks it, as `tokenizers` fails then too.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  void tokenize(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const;

  std::optional<int32_t> token_id(std::string_view token) const;
  const Vocab& vocab() const { return vocab_; }
  const WordPieceOptions& options() const { return options_; }

 private:
  int32_t unk_id() const;

  Vocab vocab_;
  WordPieceOptions options_;
  std::string source_;
  std::optional<int32_t> unk_id_;
};

// Parses a BERT vocab.txt: one token per line, the id is the line number (0-based).
Vocab parse_vocab_txt(std::string_view text);

}  // namespace attnspec
