#include "tools/bench/bench_flags.h"

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/model_args.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "tools/bench/structured_workload.h"

namespace pagoda {
namespace {

// A model (or tokenizer) is a directory or a .gguf file.
absl::Status CheckModelPath(const std::string& flag, const std::string& path) {
  if (!path.empty() && !std::filesystem::is_directory(path) && !IsGgufPath(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " is not a directory (nor a .gguf file)"));
  }
  return absl::OkStatus();
}

// The raw values of the flags both modes share, before validation.
struct WorkloadFlags {
  std::string dataset_name = "sharegpt-like";
  std::string dataset_path;
  int64_t num_prompts = 1000;
  int64_t seed = 0;
  int64_t max_model_len = 0;
  int64_t random_input_len = 1024;
  int64_t random_output_len = 128;
  double random_range_ratio = 0;
  int64_t prefix_num_prompts = 10;
  int64_t prefix_len = 256;
  int64_t suffix_len = 256;
  int64_t prefix_output_len = 128;
  std::string tokenizer;
  double temperature = 0;
  bool ignore_eos = false;
  std::string result_json;

  // with_max_model_len: false where the engine flags register --max-model-len (throughput).
  void AddTo(ArgParser& parser, bool with_max_model_len) {
    parser.AddString("dataset-name", &dataset_name, "sharegpt-like, random, prefix or jsonl");
    parser.AddString("dataset-path", &dataset_path,
                     "jsonl: one {\"prompt\": str, \"max_tokens\"|\"output_len\": int} a line");
    parser.AddInt("num-prompts", &num_prompts,
                  "Requests to send (jsonl: the first N lines; default every line)");
    parser.AddInt("seed", &seed, "Seed of the dataset and the arrival times");
    if (with_max_model_len) {
      parser.AddInt("max-model-len", &max_model_len,
                    "Bound on prompt + output tokens (0: the server's or model's context)");
    }
    parser.AddInt("random-input-len", &random_input_len, "random: prompt tokens");
    parser.AddInt("random-output-len", &random_output_len, "random: output tokens");
    parser.AddDouble("random-range-ratio", &random_range_ratio,
                     "random: lengths uniform in [len * (1 - r), len * (1 + r)], r in [0, 1)");
    parser.AddInt("prefix-num-prompts", &prefix_num_prompts,
                  "prefix: distinct shared system prompts");
    parser.AddInt("prefix-len", &prefix_len, "prefix: tokens of each shared system prompt");
    parser.AddInt("suffix-len", &suffix_len, "prefix: tokens of each request's own suffix");
    parser.AddInt("prefix-output-len", &prefix_output_len, "prefix: output tokens");
    parser.AddDouble("temperature", &temperature, "Sampling temperature (0: greedy)");
    parser.AddBool("ignore-eos", &ignore_eos,
                   "Generate every request's full output length (ignore EOS)");
    parser.AddString("result-json", &result_json, "Write the results as JSON here");
  }

  absl::StatusOr<WorkloadConfig> Validate(const ArgParser& parser) const {
    WorkloadConfig c;
    ASSIGN_OR_RETURN(c.dataset.kind, ParseDatasetKind(dataset_name));
    const DatasetKind kind = c.dataset.kind;
    const bool jsonl = kind == DatasetKind::kJsonl;
    struct Owned {
      const char* flag;
      DatasetKind kind;
    };
    for (const Owned& owned : std::vector<Owned>{{"dataset-path", DatasetKind::kJsonl},
                                                 {"random-input-len", DatasetKind::kRandom},
                                                 {"random-output-len", DatasetKind::kRandom},
                                                 {"random-range-ratio", DatasetKind::kRandom},
                                                 {"prefix-num-prompts", DatasetKind::kPrefix},
                                                 {"prefix-len", DatasetKind::kPrefix},
                                                 {"suffix-len", DatasetKind::kPrefix},
                                                 {"prefix-output-len", DatasetKind::kPrefix}}) {
      if (parser.WasSet(owned.flag) && owned.kind != kind) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", owned.flag, " applies only to --dataset-name ", DatasetKindName(owned.kind)));
      }
    }
    if (jsonl && dataset_path.empty()) {
      return absl::InvalidArgumentError("--dataset-path is required with --dataset-name jsonl");
    }
    if (num_prompts < 1 || num_prompts > 10'000'000) {
      return absl::InvalidArgumentError("--num-prompts must be in [1, 10000000]");
    }
    if (seed < 0) return absl::InvalidArgumentError("--seed must be >= 0");
    if (max_model_len < 0) return absl::InvalidArgumentError("--max-model-len must be >= 0");
    if (random_input_len < 1) return absl::InvalidArgumentError("--random-input-len must be >= 1");
    if (random_output_len < 1) {
      return absl::InvalidArgumentError("--random-output-len must be >= 1");
    }
    if (random_range_ratio < 0 || random_range_ratio >= 1) {
      return absl::InvalidArgumentError("--random-range-ratio must be in [0, 1)");
    }
    if (prefix_num_prompts < 1) {
      return absl::InvalidArgumentError("--prefix-num-prompts must be >= 1");
    }
    if (prefix_len < 1) return absl::InvalidArgumentError("--prefix-len must be >= 1");
    if (suffix_len < 1) return absl::InvalidArgumentError("--suffix-len must be >= 1");
    if (prefix_output_len < 1) {
      return absl::InvalidArgumentError("--prefix-output-len must be >= 1");
    }
    if (temperature < 0) return absl::InvalidArgumentError("--temperature must be >= 0");
    RETURN_IF_ERROR(CheckModelPath("tokenizer", tokenizer));
    c.dataset.num_prompts = jsonl && !parser.WasSet("num-prompts") ? 0 : num_prompts;
    c.dataset.seed = static_cast<uint64_t>(seed);
    c.dataset.max_model_len = max_model_len;
    c.dataset.random_input_len = random_input_len;
    c.dataset.random_output_len = random_output_len;
    c.dataset.random_range_ratio = random_range_ratio;
    c.dataset.prefix_num_prompts = prefix_num_prompts;
    c.dataset.prefix_len = prefix_len;
    c.dataset.suffix_len = suffix_len;
    c.dataset.prefix_output_len = prefix_output_len;
    c.dataset.path = dataset_path;
    c.tokenizer_dir = tokenizer;
    c.temperature = temperature;
    c.ignore_eos = ignore_eos;
    c.result_json = result_json;
    return c;
  }
};

}  // namespace

absl::StatusOr<ServeBenchConfig> ParseServeBenchFlags(int argc, const char* const* argv) {
  ArgParser parser("pagoda bench serve",
                   "Benchmark a running server (pagoda serve / pagoda-router) with streaming "
                   "requests on a Poisson/gamma arrival schedule; prints TTFT, TPOT, ITL, E2E "
                   "latency and throughput as vLLM's benchmark_serving does.");
  WorkloadFlags workload;
  std::string target;
  std::string model;
  std::string model_dir;
  std::string api_key;
  std::string request_rate = "inf";
  double burstiness = 1.0;
  int64_t max_concurrency = 0;
  std::string slo;
  double request_timeout_s = 600;
  std::string plot_dir;
  bool progress = false;
  double structured_output_ratio = 0;
  std::string json_schema;
  parser.AddString("target", &target, "grpc://HOST:PORT or http://HOST:PORT", /*required=*/true);
  parser.AddString("model", &model, "The served model's name (default: the server's)");
  parser.AddString("model-dir", &model_dir,
                   "The model's directory or .gguf file, for its tokenizer (prompts are sized "
                   "with it)");
  parser.AddString("tokenizer", &workload.tokenizer,
                   "Tokenizer directory or .gguf file (default: --model-dir)");
  parser.AddString("api-key", &api_key, "HTTP: sent as 'Authorization: Bearer KEY'");
  workload.AddTo(parser, /*with_max_model_len=*/true);
  parser.AddString("request-rate", &request_rate, "Requests per second, or inf (all at once)");
  parser.AddDouble("burstiness", &burstiness,
                   "Gamma shape of the gaps between requests: 1 is Poisson, < 1 burstier");
  parser.AddInt("max-concurrency", &max_concurrency,
                "Requests in flight at most (0: unlimited, up to 1024)");
  parser.AddString("slo", &slo, "Goodput's service-level objectives: ttft:MS,tpot:MS,e2el:MS");
  parser.AddDouble("request-timeout-s", &request_timeout_s, "A request's deadline");
  parser.AddString("plot", &plot_dir, "Write PNG charts (latency CDFs, throughput) here");
  parser.AddBool("progress", &progress, "Draw the progress bar even when stderr is no terminal");
  parser.AddDouble(
      "structured-output-ratio", &structured_output_ratio,
      "Share of requests (in [0, 1], spread evenly) whose output must follow a JSON "
      "Schema (response_format json_schema / structured_output); they never ignore EOS");
  parser.AddString(
      "json-schema", &json_schema,
      "The JSON Schema file those requests carry (default: a built-in article schema)");
  RETURN_IF_ERROR(parser.Parse(argc, argv));

  ServeBenchConfig c;
  ASSIGN_OR_RETURN(c.target, ParseBenchTarget(target));
  RETURN_IF_ERROR(CheckModelPath("model-dir", model_dir));
  if (workload.tokenizer.empty()) workload.tokenizer = model_dir;
  ASSIGN_OR_RETURN(c.workload, workload.Validate(parser));
  c.model = model;
  c.api_key = api_key;
  ASSIGN_OR_RETURN(c.arrivals.request_rate, ParseRequestRate(request_rate));
  if (burstiness <= 0) return absl::InvalidArgumentError("--burstiness must be > 0");
  c.arrivals.burstiness = burstiness;
  c.arrivals.seed = c.workload.dataset.seed;
  if (max_concurrency < 0) return absl::InvalidArgumentError("--max-concurrency must be >= 0");
  c.max_concurrency = max_concurrency;
  if (parser.WasSet("slo")) {
    ASSIGN_OR_RETURN(c.slo, ParseSlo(slo));
  }
  if (request_timeout_s <= 0) return absl::InvalidArgumentError("--request-timeout-s must be > 0");
  c.request_timeout = absl::Seconds(request_timeout_s);
  if (!plot_dir.empty() && std::filesystem::exists(plot_dir) &&
      !std::filesystem::is_directory(plot_dir)) {
    return absl::InvalidArgumentError(absl::StrCat("--plot: ", plot_dir, " is not a directory"));
  }
  c.plot_dir = plot_dir;
  c.progress = progress;
  if (!(structured_output_ratio >= 0 && structured_output_ratio <= 1)) {
    return absl::InvalidArgumentError("--structured-output-ratio must be in [0, 1]");
  }
  if (parser.WasSet("json-schema") && structured_output_ratio == 0) {
    return absl::InvalidArgumentError("--json-schema needs --structured-output-ratio > 0");
  }
  c.structured_output_ratio = structured_output_ratio;
  if (structured_output_ratio > 0) {
    ASSIGN_OR_RETURN(c.json_schema, LoadBenchJsonSchema(json_schema));
  }
  return c;
}

absl::StatusOr<ThroughputBenchConfig> ParseThroughputBenchFlags(int argc, const char* const* argv) {
  ArgParser parser("pagoda bench throughput",
                   "Offline throughput: every request at once through the in-process engine "
                   "(continuous batching over the paged KV cache, as pagoda generate runs it).");
  WorkloadFlags workload;
  ThroughputBenchConfig c;
  EngineArgs engine_args{
      .kv_cache_memory_gib = 1.0, .enable_prefix_caching = false, .offline = true};
  parser.AddString("model", &c.model_dir, "Model: a Hugging Face directory or a .gguf file",
                   /*required=*/true);
  parser.AddString("load-format", &c.load_format,
                   "auto (the model's weights) or dummy (deterministic random weights)");
  parser.AddString("tokenizer", &workload.tokenizer,
                   "Tokenizer directory or .gguf file (default: --model)");
  ModelArgs model_args;
  model_args.Register(parser);
  workload.AddTo(parser, /*with_max_model_len=*/false);
  engine_args.Register(parser);  // --max-model-len bounds the dataset too
  RETURN_IF_ERROR(parser.Parse(argc, argv));

  RETURN_IF_ERROR(CheckModelPath("model", c.model_dir));
  ASSIGN_OR_RETURN(c.memory, model_args.Build());
  if (c.load_format != "auto" && c.load_format != "dummy") {
    return absl::InvalidArgumentError(
        absl::StrCat("--load-format must be auto or dummy, got '", c.load_format, "'"));
  }
  if (workload.tokenizer.empty()) workload.tokenizer = c.model_dir;
  workload.max_model_len = engine_args.max_model_len;
  ASSIGN_OR_RETURN(c.engine, engine_args.Build());
  ASSIGN_OR_RETURN(c.workload, workload.Validate(parser));
  return c;
}

}  // namespace pagoda
