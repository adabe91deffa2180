#include "tools/bench/serve_bench.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "tools/bench/arrivals.h"
#include "tools/bench/plot.h"
#include "tools/bench/progress_bar.h"
#include "tools/bench/report.h"
#include "tools/bench/request_runner.h"
#include "tools/bench/serving_backend.h"
#include "tools/bench/structured_workload.h"

namespace pagoda {
namespace {

constexpr size_t kErrorsShown = 5;

void PrintDatasetSummary(const std::vector<BenchRequest>& requests, DatasetKind kind) {
  double prompt = 0, output = 0;
  bool prompts_known = true;
  for (const BenchRequest& r : requests) {
    prompt += static_cast<double>(r.prompt_len);
    output += static_cast<double>(r.output_len);
    prompts_known &= r.prompt_len > 0;
  }
  const double n = static_cast<double>(requests.size());
  const std::string prompt_text = prompts_known
                                      ? absl::StrFormat("mean prompt %.1f tokens", prompt / n)
                                      : std::string("prompt lengths unknown (no tokenizer)");
  std::fprintf(stderr, "pagoda bench: %zu %s requests, %s, mean max_tokens %.1f\n", requests.size(),
               DatasetKindName(kind), prompt_text.c_str(), output / n);
}

// The first few distinct errors, so a failing run says why.
void PrintErrors(const std::vector<RequestRecord>& records) {
  std::set<std::string> shown;
  for (const RequestRecord& r : records) {
    if (r.success || shown.count(r.error) || shown.size() >= kErrorsShown) continue;
    shown.insert(r.error);
    std::fprintf(stderr, "pagoda bench: a request failed: %s\n", r.error.c_str());
  }
}

}  // namespace

absl::Status RunServeBench(const ServeBenchConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<ServingBackend> backend,
                   MakeServingBackend(config.target, config.api_key));
  ASSIGN_OR_RETURN(const ServedModel served, backend->GetServedModel());
  if (!config.model.empty() && config.model != served.id) {
    return absl::InvalidArgumentError(absl::StrCat("--model: ", config.target.ToString(),
                                                   " serves '", served.id, "', not '", config.model,
                                                   "'"));
  }

  DatasetOptions dataset = config.workload.dataset;
  if (dataset.max_model_len == 0) dataset.max_model_len = served.max_model_len;
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<PromptText> text;
  if (!config.workload.tokenizer_dir.empty()) {
    ASSIGN_OR_RETURN(tokenizer, LoadTokenizerFrom(config.workload.tokenizer_dir));
    ASSIGN_OR_RETURN(text, PromptText::Create(tokenizer.get()));
  } else if (dataset.kind != DatasetKind::kJsonl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model-dir or --tokenizer is required for --dataset-name ", DatasetKindName(dataset.kind),
        " (prompts are sized with the model's tokenizer)"));
  }
  ASSIGN_OR_RETURN(std::vector<BenchRequest> requests,
                   MakeDataset(dataset, text.has_value() ? &*text : nullptr, tokenizer.get()));
  PrintDatasetSummary(requests, dataset.kind);
  const bool structured = config.structured_output_ratio > 0;
  if (structured) {
    ConstrainShare(config.structured_output_ratio, config.json_schema, requests);
    const auto constrained = std::count_if(requests.begin(), requests.end(),
                                           [](const auto& r) { return !r.json_schema.empty(); });
    std::fprintf(stderr, "pagoda bench: %td of %zu requests carry a JSON Schema (%zu bytes)\n",
                 constrained, requests.size(), config.json_schema.size());
  }

  const int64_t count = static_cast<int64_t>(requests.size());
  ProgressBar progress(count, stderr, config.progress || isatty(STDERR_FILENO) == 1);
  const RunResult run = RunRequests(*backend, requests,
                                    {.arrival_times_s = ArrivalTimes(count, config.arrivals),
                                     .max_concurrency = config.max_concurrency,
                                     .params = {.model = served.id,
                                                .temperature = config.workload.temperature,
                                                .ignore_eos = config.workload.ignore_eos,
                                                .timeout = config.request_timeout},
                                     .progress = &progress});
  progress.Finish();
  PrintErrors(run.records);

  const BenchMetrics metrics = ComputeMetrics(run.records, run.duration_s, config.slo);
  const RunDescription description{
      .date = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::LocalTimeZone()),
      .backend = config.target.protocol == BenchTarget::Protocol::kGrpc ? "grpc" : "http",
      .target = config.target.ToString(),
      .model_id = served.id,
      .tokenizer_id = config.workload.tokenizer_dir,
      .dataset_name = std::string(DatasetKindName(dataset.kind)),
      .num_prompts = count,
      .request_rate = config.arrivals.request_rate,
      .burstiness = config.arrivals.burstiness,
      .max_concurrency = config.max_concurrency,
      .seed = dataset.seed,
      .slo = config.slo};
  std::string report = FormatServeReport(description, metrics);
  std::optional<StructuredOutputStats> structured_stats;
  if (structured) {
    structured_stats = SummarizeStructuredOutputs(run.records);
    report += FormatStructuredOutputReport(*structured_stats);
  }
  std::fputs(report.c_str(), stdout);
  std::fflush(stdout);

  std::string json_path = config.workload.result_json;
  if (!config.plot_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(config.plot_dir, error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("--plot: cannot create ", config.plot_dir, ": ", error.message()));
    }
    if (json_path.empty()) json_path = absl::StrCat(config.plot_dir, "/result.json");
  }
  if (!json_path.empty()) {
    nlohmann::json result = ServeResultJson(description, metrics, run.records);
    if (structured_stats.has_value()) {
      AddStructuredOutputJson(config.structured_output_ratio, *structured_stats, result);
    }
    RETURN_IF_ERROR(WriteJsonFile(json_path, result));
  }
  if (!config.plot_dir.empty()) RETURN_IF_ERROR(WritePlots(json_path, config.plot_dir));
  return absl::OkStatus();
}

}  // namespace pagoda
