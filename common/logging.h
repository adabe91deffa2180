// Logging for Pagoda: a thin layer over spdlog so every binary logs the same way.
//
//   pagoda::InitLogging("pagoda-worker", "info");
//   PAGODA_LOG(info, "loaded {} tensors from {}", n, path);
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace pagoda {

/// Sets the default logger's name, pattern (to stderr) and level. `level` is one of spdlog's
/// level names (trace, debug, info, warn, error, critical, off).
absl::Status InitLogging(std::string_view program_name, std::string_view level);

}  // namespace pagoda

#define PAGODA_LOG(level, ...) ::spdlog::level(__VA_ARGS__)
