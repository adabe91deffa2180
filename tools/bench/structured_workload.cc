#include "tools/bench/structured_workload.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/report.h"

namespace pagoda {

std::string DefaultBenchJsonSchema() {
  const nlohmann::json schema = {
      {"type", "object"},
      {"properties",
       {{"title", {{"type", "string"}}},
        {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", 8}}},
        {"sections",
         {{"type", "array"},
          {"items",
           {{"type", "object"},
            {"properties", {{"heading", {{"type", "string"}}}, {"body", {{"type", "string"}}}}},
            {"required", {"heading", "body"}},
            {"additionalProperties", false}}}}},
        {"rating", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}}}},
      {"required", {"title", "tags", "sections", "rating"}},
      {"additionalProperties", false}};
  return schema.dump();
}

absl::StatusOr<std::string> LoadBenchJsonSchema(const std::string& path) {
  if (path.empty()) return DefaultBenchJsonSchema();
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::InvalidArgumentError(absl::StrCat("--json-schema: cannot read ", path));
  std::stringstream text;
  text << file.rdbuf();
  const nlohmann::json schema = nlohmann::json::parse(text.str(), nullptr,
                                                      /*allow_exceptions=*/false);
  if (!schema.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--json-schema: ", path, " is not a JSON object (a JSON Schema)"));
  }
  return schema.dump();
}

void ConstrainShare(double ratio, const std::string& schema, std::vector<BenchRequest>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    const double before = std::floor(static_cast<double>(i) * ratio);
    const double after = std::floor(static_cast<double>(i + 1) * ratio);
    requests[i].json_schema = after > before ? schema : std::string();
  }
}

StructuredOutputStats SummarizeStructuredOutputs(const std::vector<RequestRecord>& records) {
  StructuredOutputStats stats;
  double constrained_tpot = 0, unconstrained_tpot = 0;
  int64_t constrained_timed = 0, unconstrained_timed = 0;
  for (const RequestRecord& r : records) {
    if (!r.success) continue;
    const double tpot = TimePerOutputToken(r);
    if (!r.constrained) {
      if (r.output_tokens > 1) {
        unconstrained_tpot += tpot;
        ++unconstrained_timed;
      }
      continue;
    }
    ++stats.constrained;
    if (r.output_tokens > 1) {
      constrained_tpot += tpot;
      ++constrained_timed;
    }
    if (r.finish_reason == "length") ++stats.hit_max_tokens;
    const nlohmann::json parsed = nlohmann::json::parse(r.output_text, nullptr, false);
    if (parsed.is_object()) ++stats.valid_json;
  }
  if (constrained_timed > 0) {
    stats.constrained_tpot_ms = 1000 * constrained_tpot / static_cast<double>(constrained_timed);
  }
  if (unconstrained_timed > 0) {
    stats.unconstrained_tpot_ms =
        1000 * unconstrained_tpot / static_cast<double>(unconstrained_timed);
  }
  return stats;
}

std::string FormatStructuredOutputReport(const StructuredOutputStats& stats) {
  return absl::StrCat(
      ReportRow("Constrained requests (JSON Schema):", absl::StrCat(stats.constrained)),
      ReportRow("  outputs that parse as a JSON object:", absl::StrCat(stats.valid_json)),
      ReportRow("  outputs cut at max_tokens:", absl::StrCat(stats.hit_max_tokens)),
      ReportRow("Mean TPOT, constrained (ms):", absl::StrFormat("%.2f", stats.constrained_tpot_ms)),
      ReportRow("Mean TPOT, unconstrained (ms):",
                absl::StrFormat("%.2f", stats.unconstrained_tpot_ms)),
      ReportRule());
}

void AddStructuredOutputJson(double ratio, const StructuredOutputStats& stats,
                             nlohmann::json& result) {
  result["structured_output_ratio"] = ratio;
  result["constrained_completed"] = stats.constrained;
  result["constrained_valid_json"] = stats.valid_json;
  result["constrained_hit_max_tokens"] = stats.hit_max_tokens;
  result["mean_constrained_tpot_ms"] = stats.constrained_tpot_ms;
  result["mean_unconstrained_tpot_ms"] = stats.unconstrained_tpot_ms;
}

}  // namespace pagoda
