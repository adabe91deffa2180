#include "common/check.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace pagoda::check_internal {

CheckFailure::~CheckFailure() {
  const std::string message = message_.str();
  // stderr directly, not the logger: a failed check must be seen whatever the log level.
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file_, line_, condition_,
               message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace pagoda::check_internal
