// Every option of `analyze`, `plan` and `tokenize`, declared once: its name, type, default, help
// and check. The command line (cli/main.cpp) declares its CLI11 options from this table, the
// binding (python/bindings.cpp) turns Python keywords into a Request through it, and the Python
// API (python/attnspec/__init__.py) builds the signatures of attnspec.analyze and attnspec.plan
// from it, so an option's facts are written here and nowhere else.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "attnspec/run/request.h"

namespace attnspec {

enum Command : unsigned { kAnalyze = 1, kPlan = 2, kTokenize = 4, kCompress = 8 };
const char* command_name(Command command);

enum class OptionType {
  Path,     // a file or folder
  Int,      // an integer >= min
  Flag,     // on when given ("true"/"false" as text)
  Choice,   // one of `choices`
  Number,   // a real number
};

inline constexpr long long kNoMinimum = std::numeric_limits<long long>::min();

struct Option {
  const char* name;         // --name on the command line; with '_' for '-' a Python keyword
  OptionType type;
  unsigned commands;        // the Commands it belongs to
  std::string help;
  std::string fallback;     // the default, as text ("" when there is none: unset)
  bool required = false;    // the command line needs it (Python: `model` positional, `out` a temporary folder)
  std::vector<const char*> choices = {};  // Choice only; a Python None means the first one ("auto")
  long long min = kNoMinimum;             // Int only: smallest accepted value
  const char* python_name = nullptr;      // when the Python keyword is not the name ("tolerances")
  const char* python_fallback = nullptr;  // when Python's default differs (its results are read back)
  const char* excludes = nullptr;         // an option that may not be given with this one
  // Stores one value, given as text that set_option has checked (a repeatable option: one of them).
  void (*apply)(Request& rq, const std::string& value) = nullptr;
  // Given any number of times (--tolerance 0.01 --tolerance 0.05; a list in Python; its default
  // text lists the values separated by spaces).
  bool repeatable = false;

  std::string cli_flag() const { return std::string("--") + name; }
  std::string python_keyword() const;
};

// The table, in the order --help lists the options.
const std::vector<Option>& options();
// The options of one command, in table order.
std::vector<const Option*> options_of(Command command);

// Checks `value` (text) against the option's type, choices and minimum and stores it in rq
// (a repeatable option adds one value per call). InputError "--name: ..." on a bad value.
void set_option(const Option& option, Request& rq, const std::string& value);
// Applies the defaults of the command's options whose names are not in `given` (Python's
// defaults where they differ, when `python`).
void set_defaults(Command command, Request& rq, const std::vector<std::string>& given, bool python);

// Checks a request after its options are applied (what no single option can check: --text or
// --token-ids given) and resolves --model (a folder, file or Hugging Face hub id, io/hub.h).
// InputError on bad input.
void finish_request(Command command, Request& rq);

}  // namespace attnspec
