// The structured-output share of a `pagoda bench serve` run (--structured-output-ratio): which
// requests carry a JSON Schema (sent as response_format json_schema over HTTP and as
// structured_output over gRPC), and what their outputs came to.
//
// The constrained requests are spread evenly and deterministically over the request list:
// request i is constrained when floor((i + 1) * ratio) > floor(i * ratio), so exactly
// floor(n * ratio) of n are, the same ones on every run. They never carry ignore_eos (the
// server refuses it with a constraint: a finished structure leaves no token), so they end where
// their JSON ends or at max_tokens.
//
//   ASSIGN_OR_RETURN(std::string schema, LoadBenchJsonSchema(path));  // "" = the default
//   ConstrainShare(0.5, schema, requests);
//   StructuredOutputStats stats = SummarizeStructuredOutputs(records);
//   std::fputs(FormatStructuredOutputReport(stats).c_str(), stdout);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tools/bench/bench_metrics.h"
#include "tools/bench/dataset.h"

namespace pagoda {

/// The schema constrained requests carry without --json-schema: an article with a title, tags,
/// sections of free text and an integer rating, so outputs are long enough to time decoding.
std::string DefaultBenchJsonSchema();

/// The schema in the file at `path` (compact JSON), or DefaultBenchJsonSchema() for "".
/// InvalidArgument names the file when it cannot be read or is not a JSON object; whether the
/// server accepts the schema is the server's to say (a refused one fails every constrained
/// request with its 400).
absl::StatusOr<std::string> LoadBenchJsonSchema(const std::string& path);

/// Sets `json_schema` on the evenly spread share `ratio` (in [0, 1]) of `requests`.
void ConstrainShare(double ratio, const std::string& schema, std::vector<BenchRequest>& requests);

struct StructuredOutputStats {
  int64_t constrained = 0;           // completed constrained requests
  int64_t valid_json = 0;            // of those, outputs that parse as one JSON object
  int64_t hit_max_tokens = 0;        // of those, outputs cut by max_tokens (finish_reason length)
  double constrained_tpot_ms = 0;    // mean TPOT of the constrained requests (> 1 token)
  double unconstrained_tpot_ms = 0;  // mean TPOT of the others (> 1 token)
};

/// Over the completed records.
StructuredOutputStats SummarizeStructuredOutputs(const std::vector<RequestRecord>& records);

/// The report's "Structured outputs" block (after the serving table).
std::string FormatStructuredOutputReport(const StructuredOutputStats& stats);
/// The result JSON's keys: structured_output_ratio, constrained_completed, constrained_valid_json,
/// constrained_hit_max_tokens, mean_constrained_tpot_ms, mean_unconstrained_tpot_ms.
void AddStructuredOutputJson(double ratio, const StructuredOutputStats& stats,
                             nlohmann::json& result);

}  // namespace pagoda
