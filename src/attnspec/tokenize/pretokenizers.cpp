// Pre-tokenizers of `tokenizers`: ByteLevel, Split, Sequence, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit.
#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/pipeline.h"
#include "attnspec/tokenize/regex.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace {

using nlohmann::json;

constexpr const char* kSupported =
    "supported: ByteLevel, Split, Sequence, Metaspace, Digits, Whitespace, WhitespaceSplit, "
    "Punctuation, BertPreTokenizer, CharDelimiterSplit";

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// `matches` cover the whole text in order; returns the byte ranges kept, as `tokenizers`'
// NormalizedString::split does for each delimiter behavior.
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Span>& spans,
                                                      Behavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Isolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      break;
    case Behavior::Contiguous:
      for (const Span& s : spans) {
        if (!out.empty() && s.is_match == previous_match) out.back().second = s.end;
        else out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) out.back().second = s.end;
        else out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) out.back().first = it->begin;
        else out.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

// Spans of `text` alternating between non-matches and the matches given.
std::vector<Span> spans_from_matches(const std::vector<std::pair<size_t, size_t>>& matches,
                                     size_t size, bool invert) {
  std::vector<Span> spans;
  spans.reserve(matches.size() * 2 + 1);
  size_t previous = 0;
  for (auto [begin, end] : matches) {
    if (previous != begin) spans.push_back({previous, begin, invert});
    spans.push_back({begin, end, !invert});
    previous = end;
  }
  if (previous != size) spans.push_back({previous, size, invert});
  return spans;
}

// Each character for which `predicate` holds is a match of its own.
std::vector<std::pair<size_t, size_t>> char_matches(std::string_view text,
                                                    const std::function<bool(char32_t)>& predicate) {
  std::vector<std::pair<size_t, size_t>> matches;
  for (const char* p = text.data(); p < text.data() + text.size();) {
    const size_t begin = static_cast<size_t>(p - text.data());
    if (predicate(unicode::next_code_point(p)))
      matches.emplace_back(begin, static_cast<size_t>(p - text.data()));
  }
  return matches;
}

// Splits every piece with `find` (matches of one piece) and `behavior`.
template <typename Find>
void split_pieces(std::vector<Piece>& pieces, Find&& find, Behavior behavior, bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& piece : pieces) {
    const auto spans = spans_from_matches(find(piece.text), piece.text.size(), invert);
    for (auto [begin, end] : apply_behavior(spans, behavior))
      if (end > begin)
        out.push_back({piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
  }
  pieces.swap(out);
}

Behavior parse_behavior(const json& j, const std::string& path, Behavior fallback) {
  if (!j.contains("behavior")) return fallback;
  const std::string b = j["behavior"].is_string() ? j["behavior"].get<std::string>() : "";
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw input_error(path, "unknown split behavior '" + b +
                              "' (supported: Removed, Isolated, MergedWithPrevious, "
                              "MergedWithNext, Contiguous)");
}

std::unique_ptr<Regex> compile(const std::string& pattern, const std::string& path) {
  try {
    return std::make_unique<Regex>(pattern);
  } catch (const std::invalid_argument& e) {
    throw input_error(path, e.what());
  }
}

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex ? std::make_unique<Regex>(kGpt2Pattern) : nullptr) {}

  void split(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_)
      for (Piece& piece : pieces)
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
    if (regex_)
      split_pieces(pieces, [&](const std::string& t) { return regex_->find_all(t); },
                   Behavior::Isolated, false);
    const auto& map = unicode::byte_to_unicode();
    for (Piece& piece : pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (unsigned char b : piece.text) mapped += map[b];
      piece.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Split : public PreTokenizer {
 public:
  Split(std::unique_ptr<Regex> regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void split(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](const std::string& t) { return regex_->find_all(t); }, behavior_,
                 invert_);
  }

 private:
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

class CharSplit : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> predicate, Behavior behavior)
      : predicate_(std::move(predicate)), behavior_(behavior) {}
  void split(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](const std::string& t) { return char_matches(t, predicate_); },
                 behavior_, false);
  }

 private:
  std::function<bool(char32_t)> predicate_;
  Behavior behavior_;
};

class Metaspace : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}

  void split(std::vector<Piece>& pieces) const override {
    for (Piece& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') replaced += replacement_;
        else replaced += c;
      }
      const bool prepend = prepend_ == Prepend::Always || (prepend_ == Prepend::First && piece.at_start);
      if (prepend && replaced.compare(0, replacement_.size(), replacement_) != 0)
        replaced.insert(0, replacement_);
      piece.text.swap(replaced);
    }
    if (split_) {
      split_pieces(
          pieces,
          [&](const std::string& t) {
            std::vector<std::pair<size_t, size_t>> m;
            for (size_t at = t.find(replacement_); at != std::string::npos;
                 at = t.find(replacement_, at + replacement_.size()))
              m.emplace_back(at, at + replacement_.size());
            return m;
          },
          Behavior::MergedWithNext, false);
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& part : parts_) part->split(pieces);
  }
  const std::vector<std::unique_ptr<PreTokenizer>>& parts() const { return parts_; }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw input_error(path, "pre-tokenizer without a type");
  const std::string type = j["type"].get<std::string>();
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split") {
    const json& pattern = j.value("pattern", json());
    std::unique_ptr<Regex> regex;
    if (pattern.contains("Regex") && pattern["Regex"].is_string())
      regex = compile(pattern["Regex"].get<std::string>(), path);
    else if (pattern.contains("String") && pattern["String"].is_string())
      regex = compile(regex_escape(pattern["String"].get<std::string>()), path);
    else
      throw input_error(path, "Split pre-tokenizer needs a pattern {\"String\": ...} or {\"Regex\": ...}");
    return std::make_unique<Split>(std::move(regex), parse_behavior(j, path, Behavior::Isolated),
                                   j.value("invert", false));
  }
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      throw input_error(path, "Sequence pre-tokenizer lacks the list 'pretokenizers'");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const json& part : j["pretokenizers"])
      if (auto p = make_pre_tokenizer(part, path)) parts.push_back(std::move(p));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\u2581"));
    Metaspace::Prepend prepend = Metaspace::Prepend::Always;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const std::string scheme = j["prepend_scheme"].get<std::string>();
      if (scheme == "first") prepend = Metaspace::Prepend::First;
      else if (scheme == "never") prepend = Metaspace::Prepend::Never;
      else if (scheme != "always")
        throw input_error(path, "unknown Metaspace prepend_scheme '" + scheme + "' (supported: always, first, never)");
    } else if (j.contains("add_prefix_space") && !j.value("add_prefix_space", true)) {
      prepend = Metaspace::Prepend::Never;  // the older form of the option
    }
    return std::make_unique<Metaspace>(replacement, prepend, j.value("split", true));
  }
  if (type == "Digits") {
    const bool individual = j.value("individual_digits", false);
    return std::make_unique<CharSplit>(unicode::is_numeric,
                                       individual ? Behavior::Isolated : Behavior::Contiguous);
  }
  if (type == "Whitespace") {
    // \w+|[^\w\s]+ keeps the matches and drops what lies between them. `tokenizers` runs it with
    // Rust's `regex`, whose \w is not Oniguruma's (U+00B2 "²" is no word character there).
    const std::string& word = Regex::class_items(unicode::RegexClass::RustWord);
    return std::make_unique<Split>(std::make_unique<Regex>("[" + word + "]+|[^" + word + "\\s]+"),
                                   Behavior::Removed, true);
  }
  if (type == "WhitespaceSplit")
    return std::make_unique<CharSplit>(unicode::is_white_space, Behavior::Removed);
  if (type == "Punctuation")
    return std::make_unique<CharSplit>(unicode::is_punctuation, parse_behavior(j, path, Behavior::Isolated));
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(std::make_unique<CharSplit>(unicode::is_white_space, Behavior::Removed));
    parts.push_back(std::make_unique<CharSplit>(unicode::is_punctuation, Behavior::Isolated));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "CharDelimiterSplit") {
    const std::string delimiter = j.value("delimiter", std::string());
    const char* p = delimiter.data();
    if (delimiter.empty()) throw input_error(path, "CharDelimiterSplit lacks its delimiter");
    const char32_t c = unicode::next_code_point(p);
    return std::make_unique<CharSplit>([c](char32_t x) { return x == c; }, Behavior::Removed);
  }
  throw input_error(path, "unsupported pre-tokenizer type '" + type + "' (" + kSupported + ")");
}

std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer() {
  return std::make_unique<ByteLevel>(false, true);
}

bool is_byte_level(const PreTokenizer& p) {
  if (dynamic_cast<const ByteLevel*>(&p)) return true;
  if (auto seq = dynamic_cast<const SequencePreTokenizer*>(&p))
    for (const auto& part : seq->parts())
      if (is_byte_level(*part)) return true;
  return false;
}

}  // namespace attnspec
