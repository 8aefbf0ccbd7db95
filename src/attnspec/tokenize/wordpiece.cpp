#include "attnspec/tokenize/wordpiece.h"

#include "attnspec/common/error.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

WordPieceModel::WordPieceModel(Vocab vocab, WordPieceOptions options, std::string source)
    : vocab_(std::move(vocab)), options_(std::move(options)), source_(std::move(source)) {
  if (auto it = vocab_.find(std::string_view(options_.unk_token)); it != vocab_.end()) unk_id_ = it->second;
}

std::optional<int32_t> WordPieceModel::token_id(std::string_view token) const {
  if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return std::nullopt;
}

int32_t WordPieceModel::unk_id() const {
  if (!unk_id_)
    throw input_error(source_, "a word needs the unknown token '" + options_.unk_token + "', which is not in the vocabulary");
  return *unk_id_;
}

void WordPieceModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  size_t chars = 0;
  for (unsigned char b : word) chars += (b & 0xC0) != 0x80;
  if (chars > options_.max_input_chars_per_word) {
    out.push_back(unk_id());
    return;
  }
  // Greedy longest match from the left; `start` and `end` are byte offsets on character
  // boundaries. A piece after the first is looked up with the prefix (as `tokenizers` does,
  // "after the first" means start > 0 within the pre-token).
  const size_t first_out = out.size();
  std::string candidate = options_.continuing_subword_prefix;
  const size_t prefix_len = candidate.size();
  for (size_t start = 0; start < word.size();) {
    size_t end = word.size();
    std::optional<int32_t> found;
    while (start < end) {
      const std::string_view piece = word.substr(start, end - start);
      if (start == 0) {
        if (auto it = vocab_.find(piece); it != vocab_.end()) found = it->second;
      } else {
        candidate.resize(prefix_len);
        candidate.append(piece);
        if (auto it = vocab_.find(std::string_view(candidate)); it != vocab_.end()) found = it->second;
      }
      if (found) break;
      do --end; while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (!found) {  // some position has no piece: the whole word is unknown
      out.resize(first_out);
      out.push_back(unk_id());
      return;
    }
    out.push_back(*found);
    start = end;
  }
}

void WordPieceModel::tokenize(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const {
  cache.append(word, out, [this](std::string_view w, std::vector<int32_t>& o) { tokenize(w, o); });
}

Vocab parse_vocab_txt(std::string_view text) {
  // `transformers`' load_vocab: lines stripped of their trailing newline ("\n", also "\r\n"),
  // each line a token, id = line index; a repeated token keeps its last index.
  Vocab vocab;
  int32_t index = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    vocab[std::string(line)] = index++;
    at = end + 1;
  }
  return vocab;
}

}  // namespace attnspec
