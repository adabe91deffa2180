// When `pagoda bench serve` sends each request: a seeded gamma arrival process, as vLLM's
// benchmark_serving draws it. Gaps between requests are Gamma(shape = burstiness,
// scale = 1 / (request_rate * burstiness)), so the mean rate is request_rate whatever the
// burstiness, and the coefficient of variation of the gaps is 1 / sqrt(burstiness): 1 is a
// Poisson process, below 1 burstier, above 1 more regular. An infinite rate sends everything
// at once.
//
//   ASSIGN_OR_RETURN(double rate, ParseRequestRate("20"));
//   std::vector<double> at = ArrivalTimes(1000, {.request_rate = rate, .seed = 0});
//   // request i is sent at start + at[i] seconds
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda {

struct ArrivalOptions {
  double request_rate = std::numeric_limits<double>::infinity();  // requests per second, > 0
  double burstiness = 1.0;                                        // gamma shape, > 0
  uint64_t seed = 0;
};

/// `count` send times in seconds from the start: 0 for the first, then cumulative gaps; all 0
/// for an infinite rate. The same options give the same times.
std::vector<double> ArrivalTimes(int64_t count, const ArrivalOptions& options);

/// "inf" (or "infinity") or a positive number of requests per second.
absl::StatusOr<double> ParseRequestRate(std::string_view text);

}  // namespace pagoda
