#include "common/logging.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace pagoda {

absl::Status InitLogging(std::string_view program_name, std::string_view level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  // from_str answers `off` for unknown names; only accept `off` when asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", std::string(level),
                     "' (expected trace, debug, info, warn, error, critical or off)"));
  }
  // Re-initializing (tests run several commands in one process) replaces the logger.
  spdlog::drop(std::string(program_name));
  auto logger = spdlog::stderr_color_mt(std::string(program_name));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ %n] %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace pagoda
