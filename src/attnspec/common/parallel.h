// Exceptions must not escape an OpenMP region (that would terminate the program): the loop body
// runs inside capture(), and the first exception is rethrown on the calling thread afterwards.
#pragma once

#include <exception>
#include <mutex>

namespace attnspec {

class FirstException {
 public:
  template <typename F>
  void capture(F&& body) noexcept {
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace attnspec
