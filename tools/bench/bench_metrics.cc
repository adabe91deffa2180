#include "tools/bench/bench_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pagoda {
namespace {

std::vector<double> Millis(std::vector<double> seconds) {
  for (double& v : seconds) v *= 1000;
  return seconds;
}

bool Meets(const RequestRecord& r, const SloSpec& slo) {
  // vLLM counts a one-token request's TPOT as 0, which meets any TPOT bound.
  return (!slo.ttft_ms.has_value() || r.ttft_s * 1000 <= *slo.ttft_ms) &&
         (!slo.tpot_ms.has_value() || TimePerOutputToken(r) * 1000 <= *slo.tpot_ms) &&
         (!slo.e2el_ms.has_value() || r.latency_s * 1000 <= *slo.e2el_ms);
}

}  // namespace

absl::StatusOr<SloSpec> ParseSlo(std::string_view slo_text) {
  const absl::string_view text(slo_text.data(), slo_text.size());
  SloSpec slo;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slo must look like ttft:MS,tpot:MS,e2el:MS (", why, "), got '", text, "'"));
  };
  if (text.empty()) return bad("empty");
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::vector<absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits(':', 1));
    double ms = 0;
    if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &ms) || !std::isfinite(ms) || ms <= 0) {
      return bad(absl::StrCat("'", part, "' is not NAME:MILLISECONDS with a positive number"));
    }
    std::optional<double>* field = kv[0] == "ttft"   ? &slo.ttft_ms
                                   : kv[0] == "tpot" ? &slo.tpot_ms
                                   : kv[0] == "e2el" ? &slo.e2el_ms
                                                     : nullptr;
    if (field == nullptr) return bad(absl::StrCat("unknown metric '", kv[0], "'"));
    if (field->has_value()) return bad(absl::StrCat("'", kv[0], "' given twice"));
    *field = ms;
  }
  return slo;
}

std::string FormatSlo(const SloSpec& slo) {
  std::vector<std::string> parts;
  if (slo.ttft_ms.has_value()) parts.push_back(absl::StrCat("ttft:", *slo.ttft_ms));
  if (slo.tpot_ms.has_value()) parts.push_back(absl::StrCat("tpot:", *slo.tpot_ms));
  if (slo.e2el_ms.has_value()) parts.push_back(absl::StrCat("e2el:", *slo.e2el_ms));
  return absl::StrJoin(parts, ",");
}

double TimePerOutputToken(const RequestRecord& record) {
  if (record.output_tokens <= 1) return 0;
  return (record.latency_s - record.ttft_s) / static_cast<double>(record.output_tokens - 1);
}

double TimePerOutputToken(const DecodeSpan& span) {
  if (span.output_tokens <= 1) return 0;
  return (span.last_token_s - span.first_token_s) / static_cast<double>(span.output_tokens - 1);
}

double DecodeThroughput(std::vector<DecodeSpan> spans) {
  std::sort(spans.begin(), spans.end(), [](const DecodeSpan& a, const DecodeSpan& b) {
    return a.first_token_s < b.first_token_s;
  });
  int64_t tokens = 0;
  double covered_s = 0;
  double end_s = -std::numeric_limits<double>::infinity();  // of the union so far
  for (const DecodeSpan& span : spans) {
    if (span.output_tokens <= 1) continue;
    tokens += span.output_tokens - 1;
    const double from = std::max(span.first_token_s, end_s);
    if (span.last_token_s > from) covered_s += span.last_token_s - from;
    end_s = std::max(end_s, span.last_token_s);
  }
  return covered_s > 0 ? static_cast<double>(tokens) / covered_s : 0;
}

BenchMetrics ComputeMetrics(const std::vector<RequestRecord>& records, double duration_s,
                            const std::optional<SloSpec>& slo) {
  BenchMetrics m;
  m.duration_s = duration_s;
  std::vector<double> ttfts, tpots, itls, e2els;
  int64_t good = 0;
  for (const RequestRecord& r : records) {
    if (!r.success) {
      ++m.failed;
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.prompt_tokens;
    m.total_output_tokens += r.output_tokens;
    ttfts.push_back(r.ttft_s);
    if (r.output_tokens > 1) tpots.push_back(TimePerOutputToken(r));
    itls.insert(itls.end(), r.itl_s.begin(), r.itl_s.end());
    e2els.push_back(r.latency_s);
    if (slo.has_value() && Meets(r, *slo)) ++good;
  }
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / duration_s;
    m.total_token_throughput =
        static_cast<double>(m.total_input_tokens + m.total_output_tokens) / duration_s;
  }
  if (slo.has_value()) {
    m.good_completed = good;
    m.request_goodput = duration_s > 0 ? static_cast<double>(good) / duration_s : 0;
  }
  m.ttft_ms = Summarize(Millis(std::move(ttfts)));
  m.tpot_ms = Summarize(Millis(std::move(tpots)));
  m.itl_ms = Summarize(Millis(std::move(itls)));
  m.e2el_ms = Summarize(Millis(std::move(e2els)));
  return m;
}

}  // namespace pagoda
