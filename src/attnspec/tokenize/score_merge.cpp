#include "attnspec/tokenize/score_merge.h"

#include <cstdio>
#include <queue>

namespace attnspec {

ScoreMergeEncoder::ScoreMergeEncoder(std::vector<std::string> pieces, std::vector<float> scores, std::string space,
                                     bool prefix_space, int32_t unk_id)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), space_(std::move(space)), prefix_space_(prefix_space),
      unk_id_(unk_id) {
  ids_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<int32_t>(i));
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = ids_.find(std::string_view(name));
    byte_ids_[b] = it == ids_.end() ? unk_id_ : it->second;
  }
}

std::vector<int32_t> ScoreMergeEncoder::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  std::string s;
  s.reserve(text.size() + 8);
  auto put = [&](char c) {
    if (c == ' ') s += space_;
    else s += c;
  };
  if (prefix_space_) put(' ');
  for (char c : text) put(c);

  // Symbols: a doubly linked list over the initial pieces; merging keeps the left symbol.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    // One character: a lead byte and the continuation bytes after it (at most 4 bytes), as run.c.
    size_t n = 1;
    while (i + n < s.size() && n < 4 && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
    auto it = ids_.find(std::string_view(s).substr(i, n));
    if (it != ids_.end()) {
      sym.push_back({it->second, 0, 0, true});
    } else {
      for (size_t j = 0; j < n; ++j) sym.push_back({byte_ids_[static_cast<unsigned char>(s[i + j])], 0, 0, true});
    }
    i += n;
  }
  const int32_t count = static_cast<int32_t>(sym.size());
  for (int32_t i = 0; i < count; ++i) {
    sym[i].prev = i - 1;
    sym[i].next = i + 1 < count ? i + 1 : -1;
  }

  // Candidate merges, best score first, then leftmost: the pair run.c's scan would pick. A
  // candidate is stale when either symbol has changed since it was pushed.
  struct Candidate {
    float score;
    int32_t left, right, merged;
    int32_t left_id, right_id;
  };
  auto worse = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
  std::string joined;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = sym[left].next;
    if (right < 0) return;
    const int32_t a = sym[left].id, b = sym[right].id;
    if (a < 0 || b < 0 || size_t(a) >= pieces_.size() || size_t(b) >= pieces_.size()) return;
    joined.assign(pieces_[a]).append(pieces_[b]);
    auto it = ids_.find(std::string_view(joined));
    if (it == ids_.end()) return;
    queue.push({scores_[it->second], left, right, it->second, a, b});
  };
  for (int32_t i = 0; i + 1 < count; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    if (!l.alive || l.next != c.right || l.id != c.left_id || sym[c.right].id != c.right_id) continue;
    Symbol& r = sym[c.right];
    l.id = c.merged;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0 && i < count; i = sym[i].next) ids.push_back(sym[i].id);
  return ids;
}

}  // namespace attnspec
