#include "tools/bench/arrivals.h"

#include <cmath>
#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace pagoda {

std::vector<double> ArrivalTimes(int64_t count, const ArrivalOptions& options) {
  std::vector<double> times(static_cast<size_t>(count), 0.0);
  if (std::isinf(options.request_rate) || count == 0) return times;
  // Its own stream of the seed, so the datasets' draws do not move the arrivals.
  std::seed_seq seq{static_cast<uint32_t>(options.seed), static_cast<uint32_t>(options.seed >> 32),
                    0x61727269u /* "arri" */};
  std::mt19937_64 rng(seq);
  std::gamma_distribution<double> gap(options.burstiness,
                                      1.0 / (options.request_rate * options.burstiness));
  for (size_t i = 1; i < times.size(); ++i) times[i] = times[i - 1] + gap(rng);
  return times;
}

absl::StatusOr<double> ParseRequestRate(std::string_view text) {
  const std::string input(text);
  const std::string lower = absl::AsciiStrToLower(input);
  if (lower == "inf" || lower == "infinity") return std::numeric_limits<double>::infinity();
  double rate = 0;
  if (!absl::SimpleAtod(lower, &rate) || !std::isfinite(rate) || rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--request-rate must be a positive number of requests per second or inf, got '", input,
        "'"));
  }
  return rate;
}

}  // namespace pagoda
