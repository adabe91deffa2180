// PAGODA_CHECK: stops the process on a broken invariant — a bug in Pagoda itself, never bad input
// (input errors are absl::Status at the edge). It prints file:line, the condition and an optional
// streamed message to stderr, then aborts. The message is built only when the check fails.
//
//   PAGODA_CHECK(ref_count_[block] > 0) << "block " << block << " freed twice";
//   PAGODA_CHECK(status.ok()) << "fork of " << seq_id << " failed: " << status;
//
// Use it where continuing would corrupt state silently (block tables, KV caches) or where a
// constructor is handed options its caller should have validated. It is always on (no NDEBUG
// variant): these checks are cheap and the damage they prevent is not.
#pragma once

#include <sstream>

#define PAGODA_CHECK(condition)                       \
  (condition) ? static_cast<void>(0)                  \
              : ::pagoda::check_internal::Voidify() & \
                    ::pagoda::check_internal::CheckFailure(__FILE__, __LINE__, #condition)

namespace pagoda::check_internal {

// Collects the streamed message of a failed check; its destructor reports and aborts.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition)
      : file_(file), line_(line), condition_(condition) {}
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  [[noreturn]] ~CheckFailure();

  template <typename T>
  CheckFailure& operator<<(const T& value) {
    message_ << value;
    return *this;
  }

 private:
  const char* file_;
  int line_;
  const char* condition_;
  std::ostringstream message_;
};

// Turns the streaming expression into void, so both arms of the ?: agree. `&` binds less
// tightly than `<<`, so the whole message is streamed first.
struct Voidify {
  void operator&(const CheckFailure&) const {}
};

}  // namespace pagoda::check_internal
