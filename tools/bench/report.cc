#include "tools/bench/report.h"

#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pagoda {
namespace {

constexpr int kTableWidth = 50;

std::string Banner(const std::string& title, char fill) {
  const std::string padded = title.empty() ? title : absl::StrCat(" ", title, " ");
  const size_t left = (kTableWidth - padded.size()) / 2;
  return absl::StrCat(std::string(left, fill), padded,
                      std::string(kTableWidth - left - padded.size(), fill), "\n");
}

std::string Row(const std::string& label, const std::string& value) {
  return ReportRow(label, value);
}
std::string Row(const std::string& label, double value) {
  return Row(label, absl::StrFormat("%.2f", value));
}
std::string Row(const std::string& label, int64_t value) { return Row(label, absl::StrCat(value)); }

std::string LatencyRows(const std::string& header, const std::string& name, const Summary& s) {
  return absl::StrCat(Banner(header, '-'), Row(absl::StrCat("Mean ", name, " (ms):"), s.mean),
                      Row(absl::StrCat("Median ", name, " (ms):"), s.median),
                      Row(absl::StrCat("Std ", name, " (ms):"), s.std),
                      Row(absl::StrCat("P90 ", name, " (ms):"), s.p90),
                      Row(absl::StrCat("P99 ", name, " (ms):"), s.p99));
}

// vLLM writes "inf" for an infinite rate (JSON has no infinity).
nlohmann::json RateJson(double rate) {
  return std::isinf(rate) ? nlohmann::json("inf") : nlohmann::json(rate);
}

void AddDescription(const RunDescription& run, nlohmann::json& j) {
  j["date"] = run.date;
  j["backend"] = run.backend;
  j["target"] = run.target;
  j["model_id"] = run.model_id;
  j["tokenizer_id"] = run.tokenizer_id;
  j["dataset_name"] = run.dataset_name;
  j["num_prompts"] = run.num_prompts;
  j["seed"] = run.seed;
}

void AddSummary(const std::string& name, const Summary& s, nlohmann::json& j) {
  j[absl::StrCat("mean_", name, "_ms")] = s.mean;
  j[absl::StrCat("median_", name, "_ms")] = s.median;
  j[absl::StrCat("std_", name, "_ms")] = s.std;
  j[absl::StrCat("p90_", name, "_ms")] = s.p90;
  j[absl::StrCat("p99_", name, "_ms")] = s.p99;
}

int64_t Sum(const std::vector<int64_t>& values) {
  return std::accumulate(values.begin(), values.end(), int64_t{0});
}

// The TPOTs (seconds) of the requests with more than one token, as the serving run counts them.
std::vector<double> Tpots(const std::vector<DecodeSpan>& spans) {
  std::vector<double> tpots;
  for (const DecodeSpan& span : spans) {
    if (span.output_tokens > 1) tpots.push_back(TimePerOutputToken(span));
  }
  return tpots;
}

}  // namespace

std::string ReportRow(const std::string& label, const std::string& value) {
  return absl::StrFormat("%-40s %s\n", label, value);
}

std::string ReportRule() { return std::string(kTableWidth, '=') + "\n"; }

std::string FormatServeReport(const RunDescription& run, const BenchMetrics& m) {
  std::string out = Banner("Serving Benchmark Result", '=');
  absl::StrAppend(
      &out, Row("Backend:", absl::StrCat(run.backend, " ", run.target)),
      Row("Dataset:",
          absl::StrCat(run.dataset_name, ", ", run.num_prompts, " prompts, seed ", run.seed)),
      Row("Request rate (req/s):", std::isinf(run.request_rate)
                                       ? std::string("inf")
                                       : absl::StrFormat("%.2f", run.request_rate)),
      Row("Burstiness:", run.burstiness),
      Row("Max concurrency:",
          run.max_concurrency > 0 ? absl::StrCat(run.max_concurrency) : std::string("unlimited")));
  absl::StrAppend(&out, Row("Successful requests:", m.completed), Row("Failed requests:", m.failed),
                  Row("Benchmark duration (s):", m.duration_s),
                  Row("Total input tokens:", m.total_input_tokens),
                  Row("Total generated tokens:", m.total_output_tokens),
                  Row("Request throughput (req/s):", m.request_throughput));
  if (m.request_goodput.has_value()) {
    absl::StrAppend(&out,
                    Row(absl::StrCat("Request goodput (req/s, ", FormatSlo(*run.slo), "):"),
                        *m.request_goodput),
                    Row("Requests within the SLO:", *m.good_completed));
  }
  absl::StrAppend(&out, Row("Output token throughput (tok/s):", m.output_throughput),
                  Row("Total token throughput (tok/s):", m.total_token_throughput),
                  LatencyRows("Time to First Token", "TTFT", m.ttft_ms),
                  LatencyRows("Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms),
                  LatencyRows("Inter-token Latency", "ITL", m.itl_ms),
                  LatencyRows("End-to-end Latency", "E2EL", m.e2el_ms), ReportRule());
  return out;
}

nlohmann::json ServeResultJson(const RunDescription& run, const BenchMetrics& m,
                               const std::vector<RequestRecord>& records) {
  nlohmann::json j;
  AddDescription(run, j);
  j["request_rate"] = RateJson(run.request_rate);
  j["burstiness"] = run.burstiness;
  j["max_concurrency"] = run.max_concurrency > 0 ? nlohmann::json(run.max_concurrency) : nullptr;
  j["slo"] = run.slo.has_value() ? nlohmann::json(FormatSlo(*run.slo)) : nullptr;
  j["duration"] = m.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input_tokens;
  j["total_output_tokens"] = m.total_output_tokens;
  j["request_throughput"] = m.request_throughput;
  j["request_goodput"] =
      m.request_goodput.has_value() ? nlohmann::json(*m.request_goodput) : nullptr;
  j["good_completed"] = m.good_completed.has_value() ? nlohmann::json(*m.good_completed) : nullptr;
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  AddSummary("ttft", m.ttft_ms, j);
  AddSummary("tpot", m.tpot_ms, j);
  AddSummary("itl", m.itl_ms, j);
  AddSummary("e2el", m.e2el_ms, j);
  nlohmann::json input_lens = nlohmann::json::array(), output_lens = nlohmann::json::array(),
                 ttfts = nlohmann::json::array(), itls = nlohmann::json::array(),
                 tpots = nlohmann::json::array(), e2els = nlohmann::json::array(),
                 starts = nlohmann::json::array(), errors = nlohmann::json::array();
  for (const RequestRecord& r : records) {
    input_lens.push_back(r.prompt_tokens);
    output_lens.push_back(r.output_tokens);
    ttfts.push_back(r.ttft_s);
    itls.push_back(r.itl_s);
    tpots.push_back(TimePerOutputToken(r));
    e2els.push_back(r.latency_s);
    starts.push_back(r.start_time_s);
    errors.push_back(r.error);
  }
  j["input_lens"] = std::move(input_lens);
  j["output_lens"] = std::move(output_lens);
  j["ttfts"] = std::move(ttfts);
  j["itls"] = std::move(itls);
  j["tpots"] = std::move(tpots);
  j["e2els"] = std::move(e2els);
  j["start_times"] = std::move(starts);
  j["errors"] = std::move(errors);
  return j;
}

std::string FormatThroughputReport(const RunDescription& run, const ThroughputRun& r) {
  const int64_t input = Sum(r.input_lens);
  const int64_t output = Sum(r.output_lens);
  const double n = static_cast<double>(r.input_lens.size());
  const double s = r.elapsed_s > 0 ? r.elapsed_s : 1;
  std::string out = absl::StrCat(
      Banner("Offline Throughput Result", '='),
      Row("Model:", absl::StrCat(run.model_id, " (", run.target, ")")),
      Row("Dataset:",
          absl::StrCat(run.dataset_name, ", ", run.num_prompts, " prompts, seed ", run.seed)),
      Row("Requests:", static_cast<int64_t>(r.input_lens.size())),
      Row("Elapsed time (s):", r.elapsed_s), Row("Total input tokens:", input),
      Row("Total generated tokens:", output), Row("Request throughput (req/s):", n / s),
      Row("Output token throughput (tok/s):", static_cast<double>(output) / s),
      Row("Total token throughput (tok/s):", static_cast<double>(input + output) / s));
  if (!r.decode_spans.empty()) {
    absl::StrAppend(&out, Row("Mean TPOT (ms):", Summarize(Tpots(r.decode_spans)).mean * 1000),
                    Row("Decode token throughput (tok/s):", DecodeThroughput(r.decode_spans)));
  }
  absl::StrAppend(&out, ReportRule());
  return out;
}

nlohmann::json ThroughputResultJson(const RunDescription& run, const ThroughputRun& r) {
  nlohmann::json j;
  AddDescription(run, j);
  const int64_t input = Sum(r.input_lens);
  const int64_t output = Sum(r.output_lens);
  const double n = static_cast<double>(r.input_lens.size());
  const double s = r.elapsed_s > 0 ? r.elapsed_s : 1;
  // vLLM's benchmark_throughput keys.
  j["elapsed_time"] = r.elapsed_s;
  j["num_requests"] = r.input_lens.size();
  j["total_num_tokens"] = input + output;
  j["requests_per_second"] = n / s;
  j["tokens_per_second"] = static_cast<double>(input + output) / s;
  // The serving run's names, so `pagoda bench compare` lines the two kinds up.
  j["duration"] = r.elapsed_s;
  j["completed"] = r.input_lens.size();
  j["total_input_tokens"] = input;
  j["total_output_tokens"] = output;
  j["request_throughput"] = n / s;
  j["output_throughput"] = static_cast<double>(output) / s;
  j["total_token_throughput"] = static_cast<double>(input + output) / s;
  j["input_lens"] = r.input_lens;
  j["output_lens"] = r.output_lens;
  if (!r.decode_spans.empty()) {
    const std::vector<double> tpots = Tpots(r.decode_spans);
    j["mean_tpot_ms"] = Summarize(tpots).mean * 1000;
    j["tpots"] = tpots;
    j["decode_throughput"] = DecodeThroughput(r.decode_spans);
  }
  return j;
}

absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& json) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  file.flush();
  if (!file) return absl::UnavailableError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  nlohmann::json j = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return j;
}

}  // namespace pagoda
