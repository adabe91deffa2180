#include "worker/sampler.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kMaxFloat = std::numeric_limits<float>::max();

// (token id, value): a logit, or an unnormalized probability ("weight").
using Scored = std::pair<int32_t, float>;

// Descending by value, lowest id first on ties: the order every "top" list uses.
bool Better(const Scored& a, const Scored& b) {
  return a.second > b.second || (a.second == b.second && a.first < b.first);
}

// Scratch memory reused across the rows one thread samples.
struct Workspace {
  std::vector<int32_t> output_counts;  // [vocab_size], all zero between rows
  std::vector<uint8_t> penalized;      // [vocab_size], all zero between rows
  std::vector<float> raw_logits;       // [vocab_size], the row before any change
  std::vector<float> weights;          // [vocab_size], exp((logit - max) / temperature)
  std::vector<Scored> candidates;      // (id, weight) still in the running for the draw
  std::vector<Scored> boundary;        // candidates in the bucket where the top-p cut falls
  std::vector<double> bucket_mass;     // [kNumWeightBuckets]
};

using kernels::internal::ExpUnderflow;
using kernels::internal::FastExp;

float MaxOf(absl::Span<const float> row) {
  const float* data = row.data();
  float max_value = kNegInf;
#pragma omp simd reduction(max : max_value)
  for (size_t i = 0; i < row.size(); ++i) max_value = data[i] > max_value ? data[i] : max_value;
  return max_value;
}

// NaN becomes -inf and +inf the largest float; returns the new maximum.
float SanitizeAndMax(absl::Span<float> row) {
  float* data = row.data();
  float max_value = kNegInf;
#pragma omp simd reduction(max : max_value)
  for (size_t i = 0; i < row.size(); ++i) {
    const float x = std::isnan(data[i]) ? kNegInf : std::min(data[i], kMaxFloat);
    data[i] = x;
    max_value = std::max(max_value, x);
  }
  return max_value;
}

// log(sum(exp(x - max_value))) over the row.
double LogSumExp(absl::Span<const float> row, float max_value) {
  const float* data = row.data();
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (size_t i = 0; i < row.size(); ++i) sum += FastExp<ExpUnderflow::kZero>(data[i] - max_value);
  return std::log(sum);
}

// The k best (id, value) of `values` by Better, best first; a heap whose front is the worst kept
// so far makes one comparison per value for the usual small k.
void TopK(absl::Span<const float> values, size_t k, std::vector<Scored>& top) {
  top.clear();
  k = std::min(k, values.size());
  if (k == 0) return;
  for (size_t i = 0; i < values.size(); ++i) {
    const Scored entry(static_cast<int32_t>(i), values[i]);
    if (top.size() < k) {
      top.push_back(entry);
      std::push_heap(top.begin(), top.end(), Better);
    } else if (Better(entry, top.front())) {
      std::pop_heap(top.begin(), top.end(), Better);
      top.back() = entry;
      std::push_heap(top.begin(), top.end(), Better);
    }
  }
  std::sort_heap(top.begin(), top.end(), Better);
}

absl::Status NoFiniteLogit(const char* when) {
  return absl::InvalidArgumentError(absl::StrCat("no finite logit left ", when));
}

absl::Status CheckTokenIds(absl::Span<const int32_t> ids, int64_t vocab_size, const char* what) {
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " token id ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

// The penalties of Sampler::ApplyPenalties with reusable scratch; ids are already checked.
void ApplyPenaltiesWith(absl::Span<float> logits, const SamplingParams& params,
                        absl::Span<const int32_t> prompt_token_ids,
                        absl::Span<const int32_t> output_token_ids, Workspace& ws) {
  const size_t vocab_size = logits.size();
  if (params.repetition_penalty != 1.0f) {
    ws.penalized.resize(vocab_size, 0);
    const float penalty = params.repetition_penalty;
    for (absl::Span<const int32_t> ids : {prompt_token_ids, output_token_ids}) {
      for (int32_t id : ids) {
        if (ws.penalized[id]) continue;
        ws.penalized[id] = 1;
        float& x = logits[id];
        x = x > 0.0f ? x / penalty : x * penalty;
      }
    }
    for (absl::Span<const int32_t> ids : {prompt_token_ids, output_token_ids}) {
      for (int32_t id : ids) ws.penalized[id] = 0;
    }
  }
  if (params.frequency_penalty != 0.0f || params.presence_penalty != 0.0f) {
    ws.output_counts.resize(vocab_size, 0);
    for (int32_t id : output_token_ids) ++ws.output_counts[id];
    for (int32_t id : output_token_ids) {
      const int32_t count = ws.output_counts[id];
      if (count == 0) continue;  // already applied
      // Two steps, as vLLM does: first the frequency term, then the presence term.
      logits[id] -= params.frequency_penalty * static_cast<float>(count);
      logits[id] -= params.presence_penalty;
      ws.output_counts[id] = 0;
    }
  }
}

// The first index holding the maximum: the lowest id wins ties.
int32_t Argmax(absl::Span<const float> row) {
  const float max_value = MaxOf(row);
  return static_cast<int32_t>(std::find(row.begin(), row.end(), max_value) - row.begin());
}

// Histogram buckets over the bit pattern of a non-negative float: its exponent and the top 4
// bits of its mantissa, so a bucket spans a factor of 2^(1/16) and order is preserved.
constexpr int kWeightBucketShift = 19;
constexpr size_t kNumWeightBuckets = size_t{1} << (31 - kWeightBucketShift);
size_t WeightBucket(float weight) { return std::bit_cast<uint32_t>(weight) >> kWeightBucketShift; }

// Cuts `candidates` to the smallest best-first prefix whose weight reaches top_p of the whole,
// left in no particular order. Rather than sorting, it finds the bucket the cut falls in from a
// histogram of the weights and sorts only that bucket's members: O(n) plus a small sort.
void KeepNucleus(std::vector<Scored>& candidates, float top_p, Workspace& ws) {
  std::vector<double>& mass = ws.bucket_mass;
  mass.assign(kNumWeightBuckets, 0.0);
  double total = 0.0;
  for (const Scored& c : candidates) {
    mass[WeightBucket(c.second)] += c.second;
    total += c.second;
  }
  const double target = static_cast<double>(top_p) * total;
  double kept = 0.0;  // weight of the buckets above the cut's bucket
  size_t cut_bucket = kNumWeightBuckets;
  for (size_t b = kNumWeightBuckets; b-- > 0;) {
    if (kept + mass[b] >= target) {
      cut_bucket = b;
      break;
    }
    kept += mass[b];
  }
  if (cut_bucket == kNumWeightBuckets) return;  // rounding: the target is the whole mass

  std::vector<Scored>& boundary = ws.boundary;
  boundary.clear();
  size_t num_kept = 0;
  for (const Scored& c : candidates) {
    const size_t bucket = WeightBucket(c.second);
    if (bucket > cut_bucket) {
      candidates[num_kept++] = c;
    } else if (bucket == cut_bucket) {
      boundary.push_back(c);
    }
  }
  candidates.resize(num_kept);
  std::sort(boundary.begin(), boundary.end(), Better);
  for (const Scored& c : boundary) {
    candidates.push_back(c);
    kept += c.second;
    if (kept >= target) break;
  }
}

// Inverse CDF: the first entry whose running weight passes uniform * total. Zero weights are
// never chosen; when rounding leaves the threshold past the end, the last positive entry is.
template <typename Weights, typename IdOf, typename WeightOf>
int32_t InverseCdf(const Weights& weights, double uniform, IdOf id_of, WeightOf weight_of) {
  double total = 0.0;
  for (size_t i = 0; i < weights.size(); ++i) total += weight_of(weights[i]);
  const double threshold = uniform * total;
  double cumulative = 0.0;
  int32_t last_positive = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    const float weight = weight_of(weights[i]);
    if (weight <= 0.0f) continue;
    cumulative += weight;
    last_positive = id_of(i, weights[i]);
    if (cumulative > threshold) break;
  }
  return last_positive;
}

// Top-k of at most this many goes through a heap scan; larger k through nth_element.
constexpr int32_t kMaxHeapTopK = 256;

// temperature → min_p → top_k → top_p → inverse CDF at `uniform`.
absl::StatusOr<int32_t> SampleRandom(absl::Span<const float> row, const SamplingParams& params,
                                     double uniform, Workspace& ws) {
  const float max_logit = MaxOf(row);
  if (max_logit == kNegInf) return NoFiniteLogit("after penalties and stop-token masking");
  const float temperature = params.temperature;
  // min_p keeps prob >= min_p * max_prob, i.e. weight >= min_p, as the max's weight is 1.
  const float min_weight = params.min_p;
  ws.weights.resize(row.size());
  const float* logits = row.data();
  float* weights = ws.weights.data();
#pragma omp simd
  for (size_t i = 0; i < row.size(); ++i) {
    const float weight = FastExp<ExpUnderflow::kZero>((logits[i] - max_logit) / temperature);
    weights[i] = weight < min_weight ? 0.0f : weight;
  }

  const size_t vocab_size = row.size();
  const bool top_k = params.top_k > 0 && static_cast<size_t>(params.top_k) < vocab_size;
  const bool top_p = params.top_p < 1.0f;
  if (!top_k && !top_p) {
    return InverseCdf(
        ws.weights, uniform, [](size_t i, float) { return static_cast<int32_t>(i); },
        [](float w) { return w; });
  }
  std::vector<Scored>& candidates = ws.candidates;
  if (top_k && params.top_k <= kMaxHeapTopK) {
    TopK(ws.weights, params.top_k, candidates);
  } else {
    // Branch-free compaction of the positive weights.
    candidates.resize(vocab_size);
    size_t num_positive = 0;
    for (size_t i = 0; i < vocab_size; ++i) {
      candidates[num_positive] = Scored(static_cast<int32_t>(i), weights[i]);
      num_positive += weights[i] > 0.0f;
    }
    candidates.resize(num_positive);
    if (top_k && static_cast<size_t>(params.top_k) < candidates.size()) {
      std::nth_element(candidates.begin(), candidates.begin() + params.top_k, candidates.end(),
                       Better);
      candidates.resize(params.top_k);
    }
  }
  if (top_p) KeepNucleus(candidates, params.top_p, ws);
  return InverseCdf(
      candidates, uniform, [](size_t, const Scored& s) { return s.first; },
      [](const Scored& s) { return s.second; });
}

absl::Status SampleRow(absl::Span<float> row, const SamplingInput& input, Workspace& ws,
                       SampleOutput& out) {
  const SamplingParams& params = *input.params;
  const int64_t vocab_size = static_cast<int64_t>(row.size());
  const float raw_max = SanitizeAndMax(row);
  if (raw_max == kNegInf) return NoFiniteLogit("in the raw logits");

  // Raw logprobs (vLLM V1's default): before any penalty, mask or temperature.
  const bool want_logprobs = params.logprobs >= 0;
  double raw_log_sum = 0.0;
  if (want_logprobs) {
    ws.raw_logits.assign(row.begin(), row.end());
    raw_log_sum = LogSumExp(row, raw_max);
  }
  const auto raw_logprob = [&](int32_t id) {
    // (x - max) first: at x == max == FLT_MAX, adding log(sum) to max would be lost.
    return static_cast<float>(static_cast<double>(ws.raw_logits[id] - raw_max) - raw_log_sum);
  };
  out.top_logprobs.clear();
  if (params.logprobs > 0) {
    TopK(row, static_cast<size_t>(params.logprobs), out.top_logprobs);
    for (auto& [id, value] : out.top_logprobs) value = raw_logprob(id);
  }

  if (input.step < params.min_tokens) {
    for (int32_t id : params.stop_token_ids) {
      if (id >= 0 && id < vocab_size) row[id] = kNegInf;
    }
    if (!params.ignore_eos) {
      for (int32_t id : input.eos_token_ids) {
        if (id >= 0 && id < vocab_size) row[id] = kNegInf;
      }
    }
  }

  const bool penalize = params.repetition_penalty != 1.0f || params.frequency_penalty != 0.0f ||
                        params.presence_penalty != 0.0f;
  if (penalize) {
    if (params.repetition_penalty != 1.0f) {
      if (absl::Status s = CheckTokenIds(input.prompt_token_ids, vocab_size, "prompt"); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = CheckTokenIds(input.output_token_ids, vocab_size, "output"); !s.ok()) {
      return s;
    }
    ApplyPenaltiesWith(row, params, input.prompt_token_ids, input.output_token_ids, ws);
  }

  if (params.greedy()) {
    out.token_id = Argmax(row);
    if (row[out.token_id] == kNegInf) {
      return NoFiniteLogit("after penalties and stop-token masking");
    }
  } else {
    absl::StatusOr<int32_t> token =
        SampleRandom(row, params, Sampler::UniformDraw(input.seed, input.step), ws);
    if (!token.ok()) return token.status();
    out.token_id = *token;
  }
  out.logprob = want_logprobs ? raw_logprob(out.token_id) : 0.0f;
  return absl::OkStatus();
}

}  // namespace

double Sampler::UniformDraw(uint64_t seed, int64_t step) {
  // The splitmix64 stream that starts at a state derived from the seed, read at position `step`.
  const uint64_t bits = SplitMix64(SplitMix64(seed) + static_cast<uint64_t>(step));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

void Sampler::ApplyPenalties(absl::Span<float> logits, const SamplingParams& params,
                             absl::Span<const int32_t> prompt_token_ids,
                             absl::Span<const int32_t> output_token_ids) {
  Workspace ws;
  ApplyPenaltiesWith(logits, params, prompt_token_ids, output_token_ids, ws);
}

absl::StatusOr<std::vector<SampleOutput>> Sampler::Sample(
    absl::Span<float> logits, int64_t num_seqs, int64_t vocab_size,
    absl::Span<const SamplingInput> inputs) const {
  if (num_seqs < 0 || vocab_size <= 0 || vocab_size > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Sampler: bad logits shape [", num_seqs, ", ", vocab_size, "]"));
  }
  if (static_cast<int64_t>(logits.size()) != num_seqs * vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("Sampler: logits hold ", logits.size(),
                                                   " floats, expected num_seqs ", num_seqs,
                                                   " x vocab_size ", vocab_size));
  }
  if (static_cast<int64_t>(inputs.size()) != num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("Sampler: ", inputs.size(), " sampling inputs for ", num_seqs, " sequences"));
  }
  for (int64_t i = 0; i < num_seqs; ++i) {
    if (inputs[i].params == nullptr || inputs[i].step < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Sampler: sequence ", i, " has no params or a negative step"));
    }
  }

  std::vector<SampleOutput> outputs(num_seqs);
  std::vector<absl::Status> statuses(num_seqs);
  const bool parallel = num_seqs > 1 && num_seqs >= options_.min_parallel_seqs;
  const int num_threads = options_.max_threads > 0 ? options_.max_threads : omp_get_max_threads();
#pragma omp parallel num_threads(num_threads) if (parallel)
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < num_seqs; ++i) {
      statuses[i] =
          SampleRow(logits.subspan(i * vocab_size, vocab_size), inputs[i], ws, outputs[i]);
    }
  }
  for (int64_t i = 0; i < num_seqs; ++i) {
    if (!statuses[i].ok()) {
      return absl::Status(statuses[i].code(),
                          absl::StrCat("Sampler: sequence ", i, ": ", statuses[i].message()));
    }
  }
  return outputs;
}

}  // namespace pagoda
