// The BPE model of `tokenizers`: initial symbols per character (with byte fallback and unknown
// tokens), then merges by rank on id sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace attnspec {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a word that is itself in the vocabulary is emitted whole
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

// Pre-token -> ids of the words seen during one encode() call.
class WordCache {
 public:
  const std::vector<int32_t>* find(std::string_view word) const {
    auto it = map_.find(word);
    return it == map_.end() ? nullptr : &it->second;
  }
  void insert(std::string_view word, const int32_t* ids, size_t n) {
    map_.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
  }
  size_t size() const { return map_.size(); }
  // Appends the ids of `word`: the remembered ones, else tokenize(word, out)'s, remembered.
  template <typename Tokenize>
  void append(std::string_view word, std::vector<int32_t>& out, Tokenize&& tokenize) {
    if (const auto* ids = find(word)) {
      out.insert(out.end(), ids->begin(), ids->end());
      return;
    }
    const size_t first = out.size();
    tokenize(word, out);
    insert(word, out.data() + first, out.size() - first);
  }

 private:
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map_;
};

class BpeModel {
 public:
  // Throws InputError naming `source` when a merge names a token that is not in the vocabulary.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& source);

  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  // Same, remembering words in `cache`; long words are cut where no merge can cross.
  void tokenize(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const;

  std::optional<int32_t> token_id(std::string_view token) const;
  const Vocab& vocab() const { return vocab_; }
  const BpeOptions& options() const { return options_; }
  size_t merge_count() const { return merge_count_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  // Open-addressing map (left id, right id) -> merge.
  class MergeTable {
   public:
    void reserve(size_t n);
    void insert(int32_t left, int32_t right, Merge m);
    const Merge* find(int32_t left, int32_t right) const {
      const uint64_t key = pack(left, right);
      for (size_t i = slot(key);; i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        if (s.key == key) return &s.merge;
        if (s.key == kEmpty) return nullptr;
      }
    }

   private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    struct Slot {
      uint64_t key = kEmpty;
      Merge merge{};
    };
    static uint64_t pack(int32_t a, int32_t b) {
      return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
    }
    size_t slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    int shift_ = 64;
  };

  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  void merge_symbols(std::vector<int32_t>& symbols) const;
  int32_t char_id(char32_t c) const;
  void tokenize_long(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const;
  void tokenize_cached(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const;

  Vocab vocab_;
  BpeOptions options_;
  MergeTable merges_;
  size_t merge_count_ = 0;
  std::optional<int32_t> unk_id_;
  std::vector<int32_t> ascii_ids_;                     // single-character tokens below U+0800
  std::unordered_map<char32_t, int32_t> other_char_ids_;  // and above
  int32_t byte_ids_[256];                              // <0xNN> tokens, -1 when absent
  bool has_all_byte_tokens_ = false;
  bool plain_chars_ = true;  // no subword prefix/suffix: a symbol's text is its characters

  // Adjacent character pairs occurring inside some token; computed on first use.
  mutable std::once_flag bigrams_once_;
  mutable std::unordered_set<uint64_t> bigrams_;
};

}  // namespace attnspec
