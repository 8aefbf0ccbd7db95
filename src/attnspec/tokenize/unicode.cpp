#include "attnspec/tokenize/unicode.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace attnspec::unicode {

namespace {

struct CodePointRange {
  char32_t first, last;
};

#include "attnspec/tokenize/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t x, const CodePointRange& r) { return x < r.first; });
  return it != std::begin(table) && c <= (it - 1)->last;
}

void append_range(std::string& items, char32_t first, char32_t last) {
  char buffer[40];
  if (first == last)
    std::snprintf(buffer, sizeof buffer, "\\x{%X}", static_cast<unsigned>(first));
  else
    std::snprintf(buffer, sizeof buffer, "\\x{%X}-\\x{%X}", static_cast<unsigned>(first), static_cast<unsigned>(last));
  items += buffer;
}

}  // namespace

bool in_regex_class(RegexClass cls, char32_t c) {
  switch (cls) {
    case RegexClass::Letter: return in_ranges(kLetter, c);
    case RegexClass::Number: return in_ranges(kNumber, c);
    case RegexClass::Word: return in_ranges(kWord, c);
    case RegexClass::RustWord: return in_ranges(kRustWord, c);
  }
  return false;
}

std::string regex_class_items(RegexClass cls, int engine_major, int engine_minor) {
  // PCRE2's own property (fast: a two-stage table), plus every character of the class that the
  // property may not hold: those Unicode assigned after the engine's tables (ICU gives the age;
  // "unassigned" to ICU counts as new too) and those outside the property for other reasons
  // (Oniguruma's \w holds U+00B2 U+00B3 U+00B9 U+00BC..U+00BE). For characters both know,
  // PCRE2 and ICU agree; unicode_test.cpp checks the result against the table on every code point.
  const CodePointRange* begin = nullptr;
  const CodePointRange* end = nullptr;
  std::string items;
  std::function<bool(UChar32)> in_property;
  switch (cls) {
    case RegexClass::Letter:
      begin = std::begin(kLetter), end = std::end(kLetter), items = "\\p{L}";
      in_property = [](UChar32 c) { return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0; };
      break;
    case RegexClass::Number:
      begin = std::begin(kNumber), end = std::end(kNumber), items = "\\p{N}";
      in_property = [](UChar32 c) { return (U_GET_GC_MASK(c) & U_GC_N_MASK) != 0; };
      break;
    case RegexClass::Word:
      // Oniguruma's \w lacks the joiners U+200C, U+200D; Rust regex's has them.
      begin = std::begin(kWord), end = std::end(kWord), items = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
      in_property = [](UChar32 c) {
        return u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || (U_GET_GC_MASK(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
      };
      break;
    case RegexClass::RustWord:
      begin = std::begin(kRustWord), end = std::end(kRustWord);
      items = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
      in_property = [](UChar32 c) {
        return c == 0x200C || c == 0x200D || u_hasBinaryProperty(c, UCHAR_ALPHABETIC) ||
               (U_GET_GC_MASK(c) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
      };
      break;
  }
  auto known_to_engine = [&](char32_t c) {
    UVersionInfo age;
    u_charAge(static_cast<UChar32>(c), age);
    return age[0] != 0 && (age[0] < engine_major || (age[0] == engine_major && age[1] <= engine_minor));
  };
  for (const CodePointRange* r = begin; r != end; ++r) {
    bool open = false;
    char32_t run = 0;
    for (char32_t c = r->first; c <= r->last; ++c) {
      const bool extra = !(known_to_engine(c) && in_property(static_cast<UChar32>(c)));
      if (extra && !open) {
        run = c;
        open = true;
      } else if (!extra && open) {
        append_range(items, run, c - 1);
        open = false;
      }
    }
    if (open) append_range(items, run, r->last);
  }
  return items;
}

size_t first_invalid_utf8(std::string_view s) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Skip ASCII eight bytes at a time when possible.
    while (i + 8 <= n) {
      uint64_t chunk;
      std::memcpy(&chunk, bytes + i, 8);
      if (chunk & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char b0 = bytes[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      length = 3;
      if (b0 == 0xE0) low = 0xA0;        // overlong
      else if (b0 == 0xED) high = 0x9F;  // UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      length = 4;
      if (b0 == 0xF0) low = 0x90;        // overlong
      else if (b0 == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return i;  // continuation byte, overlong 2-byte lead (C0, C1) or F5..FF
    }
    if (i + length > n) return i;  // truncated
    if (bytes[i + 1] < low || bytes[i + 1] > high) return i;
    for (size_t k = 2; k < length; ++k)
      if ((bytes[i + k] & 0xC0) != 0x80) return i;
    i += length;
  }
  return std::string::npos;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string to_utf8(char32_t c) {
  std::string s;
  append_utf8(s, c);
  return s;
}

bool is_white_space(char32_t c) {
  // The White_Space property; stable since Unicode 6.3 (U+180E left it then).
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_alphabetic(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC);
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return is_alphabetic(c) || (c >= '0' && c <= '9') || c == '_';
  return in_ranges(kRustWord, c);
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(kNumeric, c);  // ICU 72 is Unicode 15.0; Rust's std is newer
}

namespace {

// True when `c` was assigned in Unicode `major`.0 or earlier.
bool assigned_by(char32_t c, int major) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(c), age);
  return age[0] != 0 && age[0] <= major && (age[0] < major || age[1] == 0);
}

}  // namespace

bool is_punctuation(char32_t c) {
  if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                       (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
  // `tokenizers` takes the P* categories from the unicode_categories crate: Unicode 8.0. Two
  // characters were Po then and are not now (U+166D is So, U+111C9 Mn).
  if (c == 0x166D || c == 0x111C9) return true;
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_P_MASK) != 0 && assigned_by(c, 8);
}

bool is_bert_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  constexpr uint32_t kOther = U_GC_CC_MASK | U_GC_CF_MASK | U_GC_CO_MASK;
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & kOther) != 0 && assigned_by(c, 8);
}

bool is_nonspacing_mark(char32_t c) {
  // Unicode 8.0's Mn: U+1734 was Mn then (Mc now); U+1885, U+1886 (Lo then), U+A9BD (Mc then)
  // and U+111C9 (Po then) were not. Found by comparing every code point with `tokenizers`.
  if (c == 0x1734) return true;
  if (c == 0x1885 || c == 0x1886 || c == 0xA9BD || c == 0x111C9) return false;
  return c >= 0x300 && (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_MN_MASK) != 0 && assigned_by(c, 8);
}

bool is_cjk_ideograph(char32_t c) {
  // The ranges of `tokenizers`' is_chinese_char (BERT's original list; Extension E starts at
  // U+2B920 there).
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  // Lowercasing the code point on its own gives the full, context-free mapping (e.g. U+0130).
  icu::UnicodeString s(static_cast<UChar32>(c));
  s.toLower(icu::Locale::getRoot());
  for (int32_t i = 0; i < s.length();) {
    const UChar32 l = s.char32At(i);
    append_utf8(out, static_cast<char32_t>(l));
    i += U16_LENGTH(l);
  }
}

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    // Printable Latin-1 bytes map to themselves; the rest go to U+0100 upwards in byte order.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) t[b] = to_utf8(printable(b) ? static_cast<char32_t>(b) : next++);
    return t;
  }();
  return table;
}

// ------------------------------------------------------------------------------------------------
// Normalization. ICU (Unicode 15) provides the character data; characters that Unicode 9.0 did
// not have are masked out, because `tokenizers` (unicode-normalization-alignments) still
// normalizes with 9.0 tables and would leave them alone.

namespace {

struct NormData {
  const icu::Normalizer2* decomposer = nullptr;  // NFD or NFKD
  const icu::Normalizer2* nfc = nullptr;         // for composePair
  bool compose = false;
  UProperty quick_check{};
  // Per BMP code point: 1 when the character needs no work and bounds a normalization segment.
  std::vector<uint8_t> bmp_inert;
};

bool known_in_unicode_9(char32_t c) { return assigned_by(c, 9); }

uint8_t combining_class(char32_t c) {
  if (c < 0x300 || !known_in_unicode_9(c)) return 0;
  return u_getCombiningClass(static_cast<UChar32>(c));
}

bool inert_uncached(const NormData& d, char32_t c) {
  if (!known_in_unicode_9(c)) return true;
  return u_getCombiningClass(static_cast<UChar32>(c)) == 0 &&
         u_getIntPropertyValue(static_cast<UChar32>(c), d.quick_check) == UNORM_YES;
}

const NormData& norm_data(NormalForm form) {
  static NormData data[4];
  static std::once_flag once[4];
  const int i = static_cast<int>(form);
  std::call_once(once[i], [&] {
    UErrorCode status = U_ZERO_ERROR;
    NormData& d = data[i];
    const bool compat = form == NormalForm::NFKC || form == NormalForm::NFKD;
    d.compose = form == NormalForm::NFC || form == NormalForm::NFKC;
    d.decomposer = compat ? icu::Normalizer2::getNFKDInstance(status)
                          : icu::Normalizer2::getNFDInstance(status);
    d.nfc = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) throw std::runtime_error("ICU normalization data is unavailable");
    d.quick_check = form == NormalForm::NFC    ? UCHAR_NFC_QUICK_CHECK
                    : form == NormalForm::NFD  ? UCHAR_NFD_QUICK_CHECK
                    : form == NormalForm::NFKC ? UCHAR_NFKC_QUICK_CHECK
                                             : UCHAR_NFKD_QUICK_CHECK;
    d.bmp_inert.resize(0x10000);
    for (char32_t c = 0; c < 0x10000; ++c) d.bmp_inert[c] = inert_uncached(d, c) ? 1 : 0;
  });
  return data[i];
}

bool inert(const NormData& d, char32_t c) {
  return c < 0x10000 ? d.bmp_inert[c] != 0 : inert_uncached(d, c);
}

void decompose(const NormData& d, char32_t c, std::vector<char32_t>& out) {
  icu::UnicodeString mapping;
  if (!known_in_unicode_9(c) || !d.decomposer->getDecomposition(static_cast<UChar32>(c), mapping)) {
    out.push_back(c);
    return;
  }
  for (int32_t i = 0; i < mapping.length();) {
    const UChar32 m = mapping.char32At(i);
    out.push_back(static_cast<char32_t>(m));
    i += U16_LENGTH(m);
  }
}

char32_t compose_pair(const NormData& d, char32_t a, char32_t b) {
  if (!known_in_unicode_9(a) || !known_in_unicode_9(b)) return 0;
  const UChar32 c = d.nfc->composePair(static_cast<UChar32>(a), static_cast<UChar32>(b));
  return c >= 0 && known_in_unicode_9(static_cast<char32_t>(c)) ? static_cast<char32_t>(c) : 0;
}

// Normalizes one segment: decompose, put marks in canonical order, then compose.
void normalize_segment(const NormData& d, std::string_view segment, std::string& out) {
  std::vector<char32_t> chars;
  for (const char* p = segment.data(); p < segment.data() + segment.size();)
    decompose(d, next_code_point(p), chars);
  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < chars.size();) {
    if (combining_class(chars[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < chars.size() && combining_class(chars[j]) != 0) ++j;
    std::stable_sort(chars.begin() + i, chars.begin() + j, [](char32_t a, char32_t b) {
      return combining_class(a) < combining_class(b);
    });
    i = j;
  }
  if (d.compose && !chars.empty()) {
    std::vector<char32_t> composed;
    composed.reserve(chars.size());
    ptrdiff_t starter = -1;
    int last_class = -1;  // class of the last character kept after the starter; -1: none
    for (char32_t c : chars) {
      const int cls = combining_class(c);
      const bool blocked = last_class != -1 && (last_class == 0 || last_class >= cls);
      if (starter >= 0 && !blocked) {
        if (char32_t both = compose_pair(d, composed[starter], c)) {
          composed[starter] = both;
          continue;
        }
      }
      if (cls == 0) {
        starter = static_cast<ptrdiff_t>(composed.size());
        last_class = -1;
      } else {
        last_class = cls;
      }
      composed.push_back(c);
    }
    chars.swap(composed);
  }
  for (char32_t c : chars) append_utf8(out, c);
}

}  // namespace

bool is_combining_mark(char32_t c) {
  return c >= 0x300 && (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_M_MASK) != 0 &&
         known_in_unicode_9(c);
}

std::string normalize(std::string_view text, NormalForm form) {
  const NormData& d = norm_data(form);
  std::string out;
  const char* begin = text.data();
  const char* end = begin + text.size();
  // Copy runs of inert characters; normalize each segment from the inert character before the
  // first non-inert one (it may compose with what follows) up to the next inert character.
  const char* copied = begin;       // everything before this is in `out`
  const char* last_inert = nullptr;  // start of the most recent inert character
  for (const char* p = begin; p < end;) {
    if (static_cast<unsigned char>(*p) < 0x80) {
      last_inert = p++;
      continue;
    }
    const char* at = p;
    if (inert(d, next_code_point(p))) {
      last_inert = at;
      continue;
    }
    const char* seg_begin = last_inert ? last_inert : copied;  // last_inert >= copied when set
    while (p < end) {
      const char* q = p;
      const char32_t n = next_code_point(q);
      if (static_cast<unsigned char>(*p) < 0x80 || inert(d, n)) break;
      p = q;
    }
    out.append(copied, seg_begin);
    normalize_segment(d, std::string_view(seg_begin, static_cast<size_t>(p - seg_begin)), out);
    copied = p;
    last_inert = nullptr;
  }
  if (copied == begin) return std::string(text);
  out.append(copied, end);
  return out;
}

}  // namespace attnspec::unicode
