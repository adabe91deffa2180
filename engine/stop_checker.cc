#include "engine/stop_checker.h"

#include <algorithm>
#include <utility>

#include "absl/types/span.h"
#include "common/step/stop_rules.h"

namespace pagoda {

StopConfig StopConfig::FromSamplingParams(const SamplingParams& params,
                                          std::optional<int32_t> eos_token_id,
                                          int64_t max_model_len) {
  StopConfig config;
  config.stop_strings = params.stop;
  config.include_stop_str_in_output = params.include_stop_str_in_output;
  config.stop_token_ids = params.stop_token_ids;
  config.eos_token_id = eos_token_id;
  config.ignore_eos = params.ignore_eos;
  config.min_tokens = params.min_tokens;
  config.max_tokens = params.max_tokens;
  config.max_model_len = max_model_len;
  return config;
}

StopChecker::StopChecker(StopConfig config) : config_(std::move(config)) {
  for (const std::string& stop : config_.stop_strings) {
    if (stop.empty()) continue;
    Matcher m{.pattern = stop, .failure = std::vector<size_t>(stop.size(), 0)};
    for (size_t i = 1, border = 0; i < stop.size(); ++i) {
      while (border > 0 && stop[i] != stop[border]) border = m.failure[border - 1];
      if (stop[i] == stop[border]) ++border;
      m.failure[i] = border;
    }
    matchers_.push_back(std::move(m));
  }
}

bool StopChecker::Step(Matcher& m, char byte) {
  while (m.matched > 0 && m.pattern[m.matched] != byte) m.matched = m.failure[m.matched - 1];
  if (m.pattern[m.matched] == byte) ++m.matched;
  if (m.matched < m.pattern.size()) return false;
  m.matched = m.failure[m.matched - 1];  // overlapping matches stay possible
  return true;
}

StopResult StopChecker::Finish(std::string emit, FinishReason reason, StopReason stop_reason) {
  finished_ = true;
  held_.clear();
  return StopResult{
      .emit_now = std::move(emit), .finish_reason = reason, .stop_reason = std::move(stop_reason)};
}

StopResult StopChecker::Append(std::string_view delta, int32_t token_id, int64_t num_output_tokens,
                               int64_t total_len) {
  if (finished_) return {};
  const absl::Span<const int32_t> eos = config_.eos_token_id.has_value()
                                            ? absl::Span<const int32_t>(&*config_.eos_token_id, 1)
                                            : absl::Span<const int32_t>();
  const StopRules rules(config_.stop_token_ids, eos, config_.ignore_eos, config_.min_tokens,
                        config_.max_tokens, config_.max_model_len);
  const TokenStop token_stop = rules.Check(token_id, num_output_tokens, total_len);
  if (EndsOnToken(token_stop)) {
    std::string emit = std::move(held_);
    if (config_.include_stop_str_in_output) emit.append(delta);
    return Finish(std::move(emit), FinishReason::kStop,
                  token_stop == TokenStop::kEos ? StopReason() : StopReason(token_id));
  }
  // Stop strings wait for min_tokens too.
  const bool can_stop = num_output_tokens >= config_.min_tokens;

  // The text not yet shown: held_ (a possible stop-string start) followed by the delta.
  std::string text = std::move(held_);
  held_.clear();
  const size_t delta_begin = text.size();
  text.append(delta);
  for (size_t i = delta_begin; i < text.size(); ++i) {
    const Matcher* first = nullptr;  // among matches ending at byte i, the one starting first
    for (Matcher& m : matchers_) {
      if (Step(m, text[i]) && can_stop &&
          (first == nullptr || m.pattern.size() > first->pattern.size())) {
        first = &m;
      }
    }
    if (first != nullptr) {
      const size_t end = config_.include_stop_str_in_output ? i + 1 : i + 1 - first->pattern.size();
      text.resize(end);
      return Finish(std::move(text), FinishReason::kStop, first->pattern);
    }
  }

  if (token_stop == TokenStop::kLength) {
    return Finish(std::move(text), FinishReason::kLength, StopReason());
  }

  size_t hold = 0;
  for (const Matcher& m : matchers_) hold = std::max(hold, m.matched);
  held_ = text.substr(text.size() - hold);
  text.resize(text.size() - hold);
  return StopResult{.emit_now = std::move(text)};
}

std::string StopChecker::Flush() {
  finished_ = true;
  return std::exchange(held_, std::string());
}

}  // namespace pagoda
