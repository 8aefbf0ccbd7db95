// Errors that leave the core. InputError is the user's fault (bad file, bad flag, bad text): the
// CLI prints its message on one line and exits with status 2. Anything else is an internal fault.
#pragma once

#include <stdexcept>
#include <string>

namespace attnspec {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

// "path: message" -- every input error names the file it comes from.
inline InputError input_error(const std::string& path, const std::string& message) {
  return InputError(path + ": " + message);
}

}  // namespace attnspec
