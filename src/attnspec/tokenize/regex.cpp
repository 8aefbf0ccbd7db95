#include "attnspec/tokenize/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <cstdio>
#include <stdexcept>

#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace {

// Oniguruma's Unicode \s is exactly the White_Space property.
constexpr const char* kSpaceItems =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// The class a \p{...} / \P{...} escape at `p[i]` (the 'p' or 'P') names, and the escape's
// length from `i`; only the general categories L and N, which `tokenizers`' patterns use.
bool property_class(const std::string& p, size_t i, unicode::RegexClass& cls, size_t& length) {
  for (const auto& [name, c] : {std::pair{"L", unicode::RegexClass::Letter}, {"N", unicode::RegexClass::Number},
                                {"{L}", unicode::RegexClass::Letter}, {"{N}", unicode::RegexClass::Number},
                                {"{Letter}", unicode::RegexClass::Letter}, {"{Number}", unicode::RegexClass::Number}}) {
    const std::string_view n(name);
    if (p.compare(i + 1, n.size(), n) == 0) {
      cls = c;
      length = 1 + n.size();
      return true;
    }
  }
  return false;
}

// \p{L}, \p{N} or \w as Oniguruma in `tokenizers` has them, for this PCRE2's Unicode version.
}  // namespace

const std::string& Regex::class_items(unicode::RegexClass cls) {
  static const std::array<std::string, 4> items = [] {
    char version[32] = "0.0";
    pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, version);
    int major = 0, minor = 0;
    std::sscanf(version, "%d.%d", &major, &minor);
    std::array<std::string, 4> out;
    for (auto c : {unicode::RegexClass::Letter, unicode::RegexClass::Number, unicode::RegexClass::Word,
                   unicode::RegexClass::RustWord})
      out[static_cast<size_t>(c)] = unicode::regex_class_items(c, major, minor);
    return out;
  }();
  return items[static_cast<size_t>(cls)];
}

namespace {

// Per-thread scratch: match data with one pair is enough, we only need the whole match; a JIT
// stack large enough for long runs of whitespace with look-ahead.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = [this] {
    pcre2_match_context* c = pcre2_match_context_create(nullptr);
    if (stack) pcre2_jit_stack_assign(c, nullptr, stack);
    return c;
  }();
  ~MatchScratch() {
    pcre2_match_context_free(context);
    if (stack) pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

std::string Regex::translate(const std::string& p) {
  // Oniguruma's Unicode \s is the White_Space property; its \w, \p{L} and \p{N} come from
  // Unicode tables newer than PCRE2's (unicode_tables.inc), so they become explicit ranges.
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      unicode::RegexClass cls{};
      size_t length = 0;
      if (e == 's' || e == 'w') {
        const std::string& items = e == 's' ? std::string(kSpaceItems) : class_items(unicode::RegexClass::Word);
        out += in_class ? items : "[" + items + "]";
      } else if ((e == 'S' || e == 'W') && !in_class) {
        out += "[^" + (e == 'S' ? std::string(kSpaceItems) : class_items(unicode::RegexClass::Word)) + "]";
      } else if ((e == 'p' || (e == 'P' && !in_class)) && property_class(p, i, cls, length)) {
        const std::string& items = class_items(cls);
        out += in_class ? items : (e == 'P' ? "[^" : "[") + items + "]";
        i += length - 1;
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t close = p.find(":]", i + 2);  // POSIX class such as [:alpha:]
      if (close != std::string::npos) {
        out.append(p, i, close + 2 - i);
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  const std::string translated = translate(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::invalid_argument("regex " + pattern + " does not compile: " +
                                reinterpret_cast<const char*>(message));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  MatchScratch& s = scratch();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, s.data,
                                          s.context)
                        : PCRE2_ERROR_JIT_BADOPTION;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION)
      rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, s.data,
                       s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      throw std::runtime_error(std::string("regex match failed: ") +
                               reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
    matches.emplace_back(ovector[0], ovector[1]);
    if (ovector[1] > ovector[0]) {
      start = ovector[1];
    } else {
      if (ovector[1] >= text.size()) break;
      start = ovector[1] + unicode::sequence_length(static_cast<unsigned char>(text[ovector[1]]));
    }
  }
  return matches;
}

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace attnspec
