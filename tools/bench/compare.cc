#include "tools/bench/compare.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pagoda {
namespace {

// The figures first, in the order the report prints them; any other scalar keys follow
// alphabetically.
std::vector<std::string> PreferredKeys() {
  std::vector<std::string> keys = {"date",
                                   "backend",
                                   "target",
                                   "model_id",
                                   "dataset_name",
                                   "num_prompts",
                                   "request_rate",
                                   "burstiness",
                                   "max_concurrency",
                                   "slo",
                                   "completed",
                                   "failed",
                                   "duration",
                                   "total_input_tokens",
                                   "total_output_tokens",
                                   "request_throughput",
                                   "request_goodput",
                                   "output_throughput",
                                   "total_token_throughput",
                                   "elapsed_time",
                                   "requests_per_second",
                                   "tokens_per_second"};
  for (const char* metric : {"ttft", "tpot", "itl", "e2el"}) {
    for (const char* stat : {"mean", "median", "std", "p90", "p99"}) {
      keys.push_back(absl::StrCat(stat, "_", metric, "_ms"));
    }
  }
  return keys;
}

// Settings rather than figures: shown side by side, no ratio.
const std::set<std::string>& SettingKeys() {
  static const auto* keys = new std::set<std::string>{"num_prompts", "request_rate", "burstiness",
                                                      "max_concurrency", "seed"};
  return *keys;
}

bool IsScalar(const nlohmann::json& j) { return !j.is_array() && !j.is_object(); }

std::string Cell(const nlohmann::json& object, const std::string& key) {
  if (!object.contains(key) || object[key].is_null()) return "-";
  const nlohmann::json& v = object[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  return absl::StrFormat("%.2f", v.get<double>());
}

std::string Ratio(const nlohmann::json& a, const nlohmann::json& b, const std::string& key) {
  if (SettingKeys().count(key) || !a.contains(key) || !b.contains(key) || !a[key].is_number() ||
      !b[key].is_number()) {
    return "";
  }
  const double x = a[key].get<double>();
  const double y = b[key].get<double>();
  if (x == 0) return y == 0 ? "1.00x" : "-";
  return absl::StrFormat("%.2fx", y / x);
}

}  // namespace

std::string FormatComparison(const nlohmann::json& a, const nlohmann::json& b,
                             const std::string& name_a, const std::string& name_b) {
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (const std::string& key : PreferredKeys()) {
    if ((a.contains(key) && IsScalar(a[key])) || (b.contains(key) && IsScalar(b[key]))) {
      keys.push_back(key);
    }
    seen.insert(key);
  }
  std::set<std::string> others;  // alphabetical
  for (const nlohmann::json* side : {&a, &b}) {
    for (auto it = side->begin(); it != side->end(); ++it) {
      if (!seen.count(it.key()) && IsScalar(it.value())) others.insert(it.key());
    }
  }
  keys.insert(keys.end(), others.begin(), others.end());

  size_t width_a = std::max<size_t>(16, name_a.size());
  size_t width_b = std::max<size_t>(16, name_b.size());
  for (const std::string& key : keys) {
    width_a = std::max(width_a, Cell(a, key).size());
    width_b = std::max(width_b, Cell(b, key).size());
  }
  std::string out = absl::StrFormat("%-26s  %*s  %*s  %8s\n", "", static_cast<int>(width_a), name_a,
                                    static_cast<int>(width_b), name_b, "B/A");
  for (const std::string& key : keys) {
    absl::StrAppendFormat(&out, "%-26s  %*s  %*s  %8s\n", key, static_cast<int>(width_a),
                          Cell(a, key), static_cast<int>(width_b), Cell(b, key), Ratio(a, b, key));
  }
  return out;
}

}  // namespace pagoda
