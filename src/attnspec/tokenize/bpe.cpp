#include "attnspec/tokenize/bpe.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdio>
#include <queue>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace {

constexpr char32_t kMetaspace = 0x2581;  // SentencePiece's word-boundary mark
constexpr size_t kLongWordBytes = 256;   // words above this are cut at safe boundaries
constexpr size_t kSmallWord = 48;        // below this, quadratic merging beats a heap

uint64_t pair_key(char32_t a, char32_t b) { return (uint64_t{a} << 32) | b; }

}  // namespace

void BpeModel::MergeTable::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
}

void BpeModel::MergeTable::insert(int32_t left, int32_t right, Merge m) {
  const uint64_t key = pack(left, right);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == kEmpty || s.key == key) {  // a repeated pair keeps its last rank, as in HF
      s.key = key;
      s.merge = m;
      return;
    }
  }
}

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  plain_chars_ = options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty();

  ascii_ids_.assign(0x800, -1);
  for (const auto& [token, id] : vocab_) {
    if (token.empty()) continue;
    const char* p = token.data();
    const char32_t c = unicode::next_code_point(p);
    if (p != token.data() + token.size()) continue;
    if (c < 0x800) ascii_ids_[c] = id;
    else other_char_ids_[c] = id;
  }
  has_all_byte_tokens_ = true;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
    if (byte_ids_[b] < 0) has_all_byte_tokens_ = false;
  }
  if (options_.unk_token) {
    if (auto it = vocab_.find(*options_.unk_token); it != vocab_.end()) unk_id_ = it->second;
    else throw input_error(source, "unk_token '" + *options_.unk_token + "' is not in the vocabulary");
  }

  merges_.reserve(merges.size());
  const size_t prefix_len = options_.continuing_subword_prefix.size();
  auto lookup = [&](const std::string& token, size_t rank) {
    auto it = vocab_.find(token);
    if (it == vocab_.end())
      throw input_error(source, "merge " + std::to_string(rank + 1) + " names the token '" + token +
                                    "', which is not in the vocabulary");
    return it->second;
  };
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int32_t left = lookup(a, rank), right = lookup(b, rank);
    const std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : b);
    merges_.insert(left, right, Merge{static_cast<int32_t>(rank), lookup(merged, rank)});
  }
  merge_count_ = merges.size();
}

std::optional<int32_t> BpeModel::token_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

int32_t BpeModel::char_id(char32_t c) const {
  if (c < 0x800) return ascii_ids_[c];
  auto it = other_char_ids_.find(c);
  return it == other_char_ids_.end() ? -1 : it->second;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  symbols.clear();
  bool pending_unk = false;  // an unknown run not yet emitted (fuse_unk)
  const char* end = word.data() + word.size();
  for (const char* p = word.data(); p < end;) {
    const char* begin = p;
    const char32_t c = unicode::next_code_point(p);
    int32_t id;
    std::string_view text(begin, static_cast<size_t>(p - begin));
    std::string decorated;
    if (plain_chars_) {
      id = char_id(c);
    } else {
      if (begin != word.data()) decorated = options_.continuing_subword_prefix;
      decorated += text;
      if (p == end) decorated += options_.end_of_word_suffix;
      auto it = vocab_.find(std::string_view(decorated));
      id = it == vocab_.end() ? -1 : it->second;
      text = decorated;
    }
    if (id >= 0) {
      if (pending_unk) symbols.push_back(*unk_id_);
      pending_unk = false;
      symbols.push_back(id);
      continue;
    }
    if (options_.byte_fallback &&
        (has_all_byte_tokens_ ||
         std::all_of(text.begin(), text.end(), [&](char b) { return byte_ids_[static_cast<unsigned char>(b)] >= 0; }))) {
      // A pending unknown run is only flushed by a known character, as in HF.
      for (unsigned char b : text) symbols.push_back(byte_ids_[b]);
      continue;
    }
    if (!unk_id_) continue;  // no unknown token: the character is dropped
    if (pending_unk && !options_.fuse_unk) symbols.push_back(*unk_id_);
    pending_unk = true;
  }
  if (pending_unk) symbols.push_back(*unk_id_);
}

void BpeModel::merge_symbols(std::vector<int32_t>& symbols) const {
  const size_t n = symbols.size();
  if (n < 2) return;
  if (n <= kSmallWord) {
    // Repeatedly merge the lowest-ranked pair, leftmost first.
    int32_t ranks[kSmallWord], merged[kSmallWord];
    auto rate = [&](size_t i) {
      const Merge* m = merges_.find(symbols[i], symbols[i + 1]);
      ranks[i] = m ? m->rank : INT32_MAX;
      merged[i] = m ? m->merged : -1;
    };
    size_t size = n;
    for (size_t i = 0; i + 1 < size; ++i) rate(i);
    while (size > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < size; ++i)
        if (ranks[i] < ranks[best]) best = i;
      if (ranks[best] == INT32_MAX) break;
      symbols[best] = merged[best];
      std::copy(symbols.begin() + best + 2, symbols.begin() + size, symbols.begin() + best + 1);
      if (best + 2 < size - 1) {  // drop the pair that began at the absorbed symbol
        std::copy(ranks + best + 2, ranks + size - 1, ranks + best + 1);
        std::copy(merged + best + 2, merged + size - 1, merged + best + 1);
      }
      --size;
      if (best > 0) rate(best - 1);
      if (best + 1 < size) rate(best);
    }
    symbols.resize(size);
    return;
  }
  // Long words: HF's algorithm, a heap of candidate merges over a linked list of symbols.
  struct Candidate {
    int32_t rank;
    uint32_t pos;
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (size_t i = 0; i + 1 < n; ++i)
    if (const Merge* m = merges_.find(symbols[i], symbols[i + 1]))
      queue.push({m->rank, static_cast<uint32_t>(i), m->merged});
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const uint32_t pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    const int32_t right = next[pos];
    const Merge* current = merges_.find(symbols[pos], symbols[right]);
    if (!current || current->merged != top.merged) continue;  // stale entry
    symbols[pos] = top.merged;
    alive[right] = false;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = static_cast<int32_t>(pos);
    if (prev[pos] >= 0)
      if (const Merge* m = merges_.find(symbols[prev[pos]], symbols[pos]))
        queue.push({m->rank, static_cast<uint32_t>(prev[pos]), m->merged});
    if (next[pos] >= 0)
      if (const Merge* m = merges_.find(symbols[pos], symbols[next[pos]]))
        queue.push({m->rank, pos, m->merged});
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i)
    if (alive[i]) symbols[kept++] = symbols[i];
  symbols.resize(kept);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges)
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  thread_local std::vector<int32_t> symbols;
  initial_symbols(word, symbols);
  merge_symbols(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

void BpeModel::tokenize_cached(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const {
  cache.append(word, out, [this](std::string_view w, std::vector<int32_t>& o) { tokenize(w, o); });
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out, WordCache& cache) const {
  if (word.size() > kLongWordBytes && !options_.ignore_merges && plain_chars_)
    tokenize_long(word, out, cache);
  else if (word.size() <= kLongWordBytes)
    tokenize_cached(word, out, cache);
  else
    tokenize(word, out);
}

// A word without pre-tokenization (SentencePiece style: a whole text is one word) is cut before
// a word-boundary character wherever no token contains the two characters meeting there: no
// merge can then join the two sides, so each side can be merged (and cached) on its own.
void BpeModel::tokenize_long(std::string_view word, std::vector<int32_t>& out,
                             WordCache& cache) const {
  auto boundary_char = [](char32_t c) { return c == kMetaspace || unicode::is_white_space(c); };
  bool any_boundary = false;
  for (const char* p = word.data(); p < word.data() + word.size() && !any_boundary;)
    any_boundary = boundary_char(unicode::next_code_point(p));
  if (!any_boundary) {  // e.g. byte-level text, where spaces are already mapped away
    tokenize(word, out);
    return;
  }
  std::call_once(bigrams_once_, [this] {
    for (const auto& [token, id] : vocab_) {
      const char* p = token.data();
      const char* end = p + token.size();
      if (p == end) continue;
      char32_t previous = unicode::next_code_point(p);
      while (p < end) {
        const char32_t c = unicode::next_code_point(p);
        bigrams_.insert(pair_key(previous, c));
        previous = c;
      }
    }
  });
  const char* begin = word.data();
  const char* end = begin + word.size();
  const char* piece = begin;
  const char* p = begin;
  char32_t previous = unicode::next_code_point(p);
  while (p < end) {
    const char* at = p;
    const char32_t c = unicode::next_code_point(p);
    const bool boundary = boundary_char(c) || boundary_char(previous);
    if (boundary && char_id(previous) >= 0 && char_id(c) >= 0 &&
        !bigrams_.contains(pair_key(previous, c))) {
      const std::string_view sub(piece, static_cast<size_t>(at - piece));
      if (sub.size() <= kLongWordBytes) tokenize_cached(sub, out, cache);
      else tokenize(sub, out);
      piece = at;
    }
    previous = c;
  }
  const std::string_view sub(piece, static_cast<size_t>(end - piece));
  if (sub.size() <= kLongWordBytes) tokenize_cached(sub, out, cache);
  else tokenize(sub, out);
}

}  // namespace attnspec
