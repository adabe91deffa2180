// What one benchmark run measured, from per-request records, with vLLM's definitions
// (benchmarks/benchmark_serving.py, calculate_metrics):
//   - TTFT: from sending the request to its first streamed chunk that carries output;
//   - ITL: the gaps between consecutive output chunks (one per engine step, so a multi-step or
//     multi-token chunk is one gap), pooled over all requests;
//   - TPOT: per request, (E2EL - TTFT) / (output tokens - 1), for requests with > 1 token;
//   - E2EL: from sending the request to its last byte;
//   - goodput: completed requests that met every SLO (TTFT, TPOT, E2EL bounds), per second.
// Token counts are the server's usage (prompt_tokens, completion_tokens), not chunk counts.
//
//   ASSIGN_OR_RETURN(SloSpec slo, ParseSlo("ttft:500,tpot:50"));
//   BenchMetrics m = ComputeMetrics(records, duration_s, slo);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/bench/statistics.h"

namespace pagoda {

/// One request's outcome, as a serving backend measured it (times in seconds).
struct RequestRecord {
  bool success = false;
  std::string error;          // why it failed; empty on success
  int64_t prompt_tokens = 0;  // the server's usage
  int64_t output_tokens = 0;  // the server's usage
  double start_time_s = 0;    // when it was sent, from the start of the run
  double ttft_s = 0;          // to the first output chunk
  double latency_s = 0;       // to the end of the response (E2EL)
  std::vector<double> itl_s;  // gaps between consecutive output chunks
  // Structured outputs (--structured-output-ratio): only a constrained request keeps its text.
  bool constrained = false;   // it carried a JSON Schema
  std::string output_text;    // the streamed text, when constrained
  std::string finish_reason;  // "stop", "length" or "abort", when the server said
};

/// Service-level objectives in milliseconds; an unset one is not checked.
struct SloSpec {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
};

/// "ttft:MS,tpot:MS,e2el:MS" (any non-empty subset, any order; MS > 0).
absl::StatusOr<SloSpec> ParseSlo(std::string_view text);
/// The same text back ("ttft:500,tpot:50").
std::string FormatSlo(const SloSpec& slo);

struct BenchMetrics {
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t total_input_tokens = 0;   // over completed requests
  int64_t total_output_tokens = 0;  // over completed requests
  double duration_s = 0;
  double request_throughput = 0;          // completed / s
  double output_throughput = 0;           // output tokens / s
  double total_token_throughput = 0;      // (input + output) tokens / s
  std::optional<int64_t> good_completed;  // with an SLO: completed requests that met it
  std::optional<double> request_goodput;  // good_completed / s
  Summary ttft_ms;
  Summary tpot_ms;
  Summary itl_ms;
  Summary e2el_ms;
};

/// TPOT of one record in seconds: 0 for a request with at most one output token.
double TimePerOutputToken(const RequestRecord& record);

/// One request of an offline run (`pagoda bench throughput`): when its first output token and
/// its last token were delivered, in seconds from the run's start, and how many it generated.
struct DecodeSpan {
  double first_token_s = 0;
  double last_token_s = 0;
  int64_t output_tokens = 0;
};

/// TPOT of one span in seconds, as TimePerOutputToken: 0 for at most one output token.
double TimePerOutputToken(const DecodeSpan& span);

/// A run's decode rate: the output tokens after each request's first, per second during which
/// at least one request was decoding (the union of the spans from first to last token). The
/// prefills and the queueing before a request's first token are left out, so at batch 1 it is
/// 1 / the token-weighted mean TPOT. 0 when no request made a second token.
double DecodeThroughput(std::vector<DecodeSpan> spans);

/// Metrics over `records` of a run that took `duration_s` seconds.
BenchMetrics ComputeMetrics(const std::vector<RequestRecord>& records, double duration_s,
                            const std::optional<SloSpec>& slo);

}  // namespace pagoda
