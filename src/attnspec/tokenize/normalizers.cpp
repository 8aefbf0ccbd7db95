// Normalizers of `tokenizers`: Unicode forms, Sequence, Prepend, Replace, Lowercase, Strip,
// StripAccents, BertNormalizer.
#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/pipeline.h"
#include "attnspec/tokenize/regex.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace {

using nlohmann::json;

constexpr const char* kSupported =
    "supported: NFC, NFD, NFKC, NFKD, Sequence, Prepend, Replace, Lowercase, Strip, StripAccents, "
    "BertNormalizer";

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(unicode::NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override { text = unicode::normalize(text, form_); }

 private:
  unicode::NormalForm form_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& part : parts_) part->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(std::string literal, std::unique_ptr<Regex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::string out;
    size_t copied = 0;
    auto replace = [&](size_t begin, size_t end) {
      out.append(text, copied, begin - copied);
      out += content_;
      copied = end;
    };
    if (regex_) {
      for (auto [begin, end] : regex_->find_all(text))
        if (end > begin) replace(begin, end);
    } else if (!literal_.empty()) {
      for (size_t at = text.find(literal_); at != std::string::npos;
           at = text.find(literal_, at + literal_.size()))
        replace(at, at + literal_.size());
    }
    if (copied == 0) return;
    out.append(text, copied);
    text.swap(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (const char* p = text.data(); p < text.data() + text.size();)
      unicode::append_lowercase(out, unicode::next_code_point(p));
    text.swap(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      for (const char* p = text.data(); p < text.data() + end;) {
        if (!unicode::is_white_space(unicode::next_code_point(p))) break;
        begin = static_cast<size_t>(p - text.data());
      }
    }
    if (right_) {
      size_t last_content_end = begin;
      for (const char* p = text.data() + begin; p < text.data() + text.size();)
        if (!unicode::is_white_space(unicode::next_code_point(p)))
          last_content_end = static_cast<size_t>(p - text.data());
      end = last_content_end;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    for (const char* p = text.data(); p < text.data() + text.size();) {
      const char32_t c = unicode::next_code_point(p);
      if (!unicode::is_combining_mark(c)) unicode::append_utf8(out, c);
    }
    text.swap(out);
  }
};

// BERT's normalizer, its four steps in `tokenizers`' order:
//   clean_text: drop NUL, U+FFFD and control characters (is_bert_control), white space -> ' ';
//   handle_chinese_chars: put a space on each side of every CJK ideograph;
//   strip_accents (defaults to `lowercase`): NFD, then drop nonspacing marks (Mn only, unlike
//     the StripAccents normalizer, which drops every mark);
//   lowercase: Rust's char::to_lowercase.
class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (const char* p = text.data(); p < text.data() + text.size();) {
      const char32_t c = unicode::next_code_point(p);
      if (clean_text_) {
        if (c == 0 || c == 0xFFFD || unicode::is_bert_control(c)) continue;
        if (unicode::is_white_space(c)) {
          out += ' ';
          continue;
        }
      }
      if (chinese_ && unicode::is_cjk_ideograph(c)) {
        out += ' ';
        unicode::append_utf8(out, c);
        out += ' ';
      } else {
        unicode::append_utf8(out, c);
      }
    }
    if (strip_accents_) {
      const std::string decomposed = unicode::normalize(out, unicode::NormalForm::NFD);
      out.clear();
      for (const char* p = decomposed.data(); p < decomposed.data() + decomposed.size();) {
        const char32_t c = unicode::next_code_point(p);
        if (!unicode::is_nonspacing_mark(c)) unicode::append_utf8(out, c);
      }
    }
    if (lowercase_) {
      std::string lower;
      lower.reserve(out.size());
      for (const char* p = out.data(); p < out.data() + out.size();)
        unicode::append_lowercase(lower, unicode::next_code_point(p));
      out.swap(lower);
    }
    text.swap(out);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

std::string string_field(const json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_string())
    throw input_error(path, "normalizer " + j.value("type", std::string("?")) + " lacks the string field '" + key + "'");
  return j[key].get<std::string>();
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw input_error(path, "normalizer without a type");
  const std::string type = j["type"].get<std::string>();
  if (type == "NFC") return std::make_unique<UnicodeForm>(unicode::NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(unicode::NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(unicode::NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(unicode::NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip")
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "BertNormalizer") {
    auto flag = [&](const char* key, bool fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      if (!j[key].is_boolean()) throw input_error(path, std::string("BertNormalizer's '") + key + "' is not a boolean");
      return j[key].get<bool>();
    };
    const bool lowercase = flag("lowercase", true);
    return std::make_unique<BertNormalizer>(flag("clean_text", true), flag("handle_chinese_chars", true),
                                            flag("strip_accents", lowercase), lowercase);
  }
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(j, "prepend", path));
  if (type == "Replace") {
    const json& pattern = j.value("pattern", json());
    const std::string content = string_field(j, "content", path);
    if (pattern.contains("String") && pattern["String"].is_string())
      return std::make_unique<Replace>(pattern["String"].get<std::string>(), nullptr, content);
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      try {
        return std::make_unique<Replace>("", std::make_unique<Regex>(pattern["Regex"].get<std::string>()),
                                         content);
      } catch (const std::invalid_argument& e) {
        throw input_error(path, std::string("Replace normalizer: ") + e.what());
      }
    }
    throw input_error(path, "Replace normalizer needs a pattern {\"String\": ...} or {\"Regex\": ...}");
  }
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      throw input_error(path, "Sequence normalizer lacks the list 'normalizers'");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json& part : j["normalizers"])
      if (auto n = make_normalizer(part, path)) parts.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  throw input_error(path, "unsupported normalizer type '" + type + "' (" + kSupported + ")");
}

}  // namespace attnspec
