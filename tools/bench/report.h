// How `pagoda bench` reports a run: the vLLM-like table on stdout and the --result-json file.
// The JSON of a serving run has the keys vLLM's benchmark_serving writes (completed,
// total_input_tokens, total_output_tokens, request_throughput, request_goodput,
// output_throughput, total_token_throughput, mean_/median_/std_/p90_/p99_ of ttft_ms, tpot_ms,
// itl_ms and e2el_ms, duration, date, backend, model_id, tokenizer_id, num_prompts,
// request_rate, burstiness, max_concurrency, and per request input_lens, output_lens, ttfts,
// itls, errors), plus failed, seed, dataset_name, target, slo, good_completed and per request
// start_times, tpots and e2els (seconds). A throughput run's JSON has vLLM's
// benchmark_throughput keys (elapsed_time, num_requests, total_num_tokens,
// requests_per_second, tokens_per_second) and the serving run's token and throughput keys, and
// when the run timed its requests, tpots (seconds), mean_tpot_ms and decode_throughput.
//
//   std::fputs(FormatServeReport(description, metrics).c_str(), stdout);
//   RETURN_IF_ERROR(WriteJsonFile(path, ServeResultJson(description, metrics, records)));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tools/bench/bench_metrics.h"

namespace pagoda {

/// What was run: the settings a result file records beside the figures.
struct RunDescription {
  std::string date;     // "20261121-142501"
  std::string backend;  // "grpc", "http", "engine"
  std::string target;   // the URL, or the model directory
  std::string model_id;
  std::string tokenizer_id;
  std::string dataset_name;
  int64_t num_prompts = 0;
  double request_rate = 0;  // requests per second; infinity: all at once
  double burstiness = 1.0;
  int64_t max_concurrency = 0;  // 0: unlimited
  uint64_t seed = 0;
  std::optional<SloSpec> slo;
};

/// One "label   value" line of the tables, and the table's closing rule.
std::string ReportRow(const std::string& label, const std::string& value);
std::string ReportRule();

std::string FormatServeReport(const RunDescription& run, const BenchMetrics& metrics);
nlohmann::json ServeResultJson(const RunDescription& run, const BenchMetrics& metrics,
                               const std::vector<RequestRecord>& records);

/// An offline throughput run: every request at once through the in-process engine.
struct ThroughputRun {
  double elapsed_s = 0;
  std::vector<int64_t> input_lens;   // per request, prompt tokens
  std::vector<int64_t> output_lens;  // per request, generated tokens
  /// Per request, when its first and last tokens came (empty: not measured). Adds the mean TPOT
  /// and the decode throughput (DecodeThroughput) to the report and the JSON.
  std::vector<DecodeSpan> decode_spans;
};

std::string FormatThroughputReport(const RunDescription& run, const ThroughputRun& result);
nlohmann::json ThroughputResultJson(const RunDescription& run, const ThroughputRun& result);

absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& json);
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

}  // namespace pagoda
