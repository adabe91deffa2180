#include "kernels/cpu/sampling.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/cpu/internal/vec_math.h"

// No PAGODA_KERNEL_CLONES here: the vector width sets the order of the reductions (row maxima
// aside, the sums of LogSumExp and the weights), and the samples and logprobs are kept
// bit-identical on every machine.
namespace pagoda::kernels::cpu {
namespace {

using internal::ExpUnderflow;
using internal::FastExp;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kMaxFloat = std::numeric_limits<float>::max();

// (token id, value): a logit, or an unnormalized probability ("weight").
using Scored = std::pair<int32_t, float>;

// Descending by value, lowest id first on ties: the order every "top" list uses.
bool Better(const Scored& a, const Scored& b) {
  return a.second > b.second || (a.second == b.second && a.first < b.first);
}

// Runs body(row, scratch) on each selected row, rows spread over threads, each thread with its
// own Scratch reused across its rows.
template <typename Scratch, typename Body>
void ForRows(const SamplingRows& b, Body body) {
  const bool parallel = b.num_rows > 1 && b.max_threads != 1;
  const int num_threads = b.max_threads > 0 ? b.max_threads : omp_get_max_threads();
#pragma omp parallel num_threads(num_threads) if (parallel)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < b.num_rows; ++i) body(b.row(i), scratch);
  }
}

struct NoScratch {};

float MaxOf(const float* data, size_t n) {
  float max_value = kNegInf;
#pragma omp simd reduction(max : max_value)
  for (size_t i = 0; i < n; ++i) max_value = data[i] > max_value ? data[i] : max_value;
  return max_value;
}

// NaN becomes -inf and +inf the largest float; returns the new maximum.
float SanitizeAndMax(float* data, size_t n) {
  float max_value = kNegInf;
#pragma omp simd reduction(max : max_value)
  for (size_t i = 0; i < n; ++i) {
    const float x = std::isnan(data[i]) ? kNegInf : std::min(data[i], kMaxFloat);
    data[i] = x;
    max_value = std::max(max_value, x);
  }
  return max_value;
}

// log(sum(exp(x - max_value))) over the row.
double LogSumExp(const float* data, size_t n, float max_value) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (size_t i = 0; i < n; ++i) sum += FastExp<ExpUnderflow::kZero>(data[i] - max_value);
  return std::log(sum);
}

// The k best (id, value) of `values` by Better, best first; a heap whose front is the worst kept
// so far makes one comparison per value for the usual small k.
void TopKOf(const float* values, size_t n, size_t k, std::vector<Scored>& top) {
  top.clear();
  k = std::min(k, n);
  if (k == 0) return;
  for (size_t i = 0; i < n; ++i) {
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

// Histogram buckets over the bit pattern of a non-negative float: its exponent and the top 4
// bits of its mantissa, so a bucket spans a factor of 2^(1/16) and order is preserved.
constexpr int kWeightBucketShift = 19;
constexpr size_t kNumWeightBuckets = size_t{1} << (31 - kWeightBucketShift);
size_t WeightBucket(float weight) { return std::bit_cast<uint32_t>(weight) >> kWeightBucketShift; }

struct DrawScratch {
  std::vector<Scored> candidates;   // (id, weight) still in the running for the draw
  std::vector<Scored> boundary;     // candidates in the bucket where the top-p cut falls
  std::vector<double> bucket_mass;  // [kNumWeightBuckets]
};

// Cuts `candidates` to the smallest best-first prefix whose weight reaches top_p of the whole,
// left in no particular order. Rather than sorting, it finds the bucket the cut falls in from a
// histogram of the weights and sorts only that bucket's members: O(n) plus a small sort.
void KeepNucleus(std::vector<Scored>& candidates, float top_p, DrawScratch& ws) {
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
int32_t InverseCdf(const Weights& weights, size_t n, double uniform, IdOf id_of,
                   WeightOf weight_of) {
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += weight_of(weights[i]);
  const double threshold = uniform * total;
  double cumulative = 0.0;
  int32_t last_positive = -1;
  for (size_t i = 0; i < n; ++i) {
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

// top_k → top_p → inverse CDF at `uniform` over one row of weights.
int32_t DrawRow(const float* weights, size_t vocab_size, int32_t top_k_value, float top_p_value,
                double uniform, DrawScratch& ws) {
  const bool top_k = top_k_value > 0 && static_cast<size_t>(top_k_value) < vocab_size;
  const bool top_p = top_p_value < 1.0f;
  if (!top_k && !top_p) {
    return InverseCdf(
        weights, vocab_size, uniform, [](size_t i, float) { return static_cast<int32_t>(i); },
        [](float w) { return w; });
  }
  std::vector<Scored>& candidates = ws.candidates;
  if (top_k && top_k_value <= kMaxHeapTopK) {
    TopKOf(weights, vocab_size, top_k_value, candidates);
  } else {
    // Branch-free compaction of the positive weights.
    candidates.resize(vocab_size);
    size_t num_positive = 0;
    for (size_t i = 0; i < vocab_size; ++i) {
      candidates[num_positive] = Scored(static_cast<int32_t>(i), weights[i]);
      num_positive += weights[i] > 0.0f;
    }
    candidates.resize(num_positive);
    if (top_k && static_cast<size_t>(top_k_value) < candidates.size()) {
      std::nth_element(candidates.begin(), candidates.begin() + top_k_value, candidates.end(),
                       Better);
      candidates.resize(top_k_value);
    }
  }
  if (top_p) KeepNucleus(candidates, top_p_value, ws);
  return InverseCdf(
      candidates, candidates.size(), uniform, [](size_t, const Scored& s) { return s.first; },
      [](const Scored& s) { return s.second; });
}

struct PenaltyScratch {
  std::vector<int32_t> output_counts;  // [vocab_size], all zero between rows
  std::vector<uint8_t> penalized;      // [vocab_size], all zero between rows
};

}  // namespace

void SanitizeLogits(const SanitizeLogitsParams& p) {
  const size_t v = static_cast<size_t>(p.batch.vocab_size);
  ForRows<NoScratch>(p.batch, [&](int64_t s, NoScratch&) {
    p.row_max[s] = SanitizeAndMax(p.logits + s * p.batch.vocab_size, v);
  });
}

void LogSoftmax(const LogSoftmaxParams& p) {
  const int64_t v = p.batch.vocab_size;
  // Row i of logprobs belongs to batch row row(i): run over positions, not rows.
  SamplingRows positions = p.batch;
  positions.rows = nullptr;
  positions.num_seqs = positions.num_rows;
  ForRows<NoScratch>(positions, [&](int64_t i, NoScratch&) {
    const int64_t s = p.batch.row(i);
    const float* __restrict x = p.logits + s * v;
    float* __restrict out = p.logprobs + i * v;
    const float max_value = p.row_max[s];
    const double log_sum = LogSumExp(x, static_cast<size_t>(v), max_value);
    // (x - max) first: at x == max == FLT_MAX, adding log(sum) to max would be lost.
#pragma omp simd
    for (int64_t j = 0; j < v; ++j) {
      out[j] = static_cast<float>(static_cast<double>(x[j] - max_value) - log_sum);
    }
  });
}

void TopK(const TopKParams& p) {
  const int64_t v = p.batch.vocab_size;
  ForRows<std::vector<Scored>>(p.batch, [&](int64_t s, std::vector<Scored>& top) {
    TopKOf(p.values + s * v, static_cast<size_t>(v), static_cast<size_t>(p.k[s]), top);
    for (size_t j = 0; j < top.size(); ++j) {
      p.top_ids[s * p.max_k + static_cast<int64_t>(j)] = top[j].first;
      p.top_values[s * p.max_k + static_cast<int64_t>(j)] = top[j].second;
    }
  });
}

void MaskTokens(const MaskTokensParams& p) {
  const int64_t v = p.batch.vocab_size;
  for (int64_t i = 0; i < p.batch.num_rows; ++i) {  // a few ids per row: no threads
    const int64_t s = p.batch.row(i);
    float* row = p.logits + s * v;
    for (int64_t j = p.offsets[s]; j < p.offsets[s + 1]; ++j) {
      const int32_t id = p.token_ids[j];
      if (id >= 0 && id < v) row[id] = kNegInf;
    }
  }
}

void ApplyTokenBitmask(const TokenBitmaskParams& p) {
  const int64_t v = p.batch.vocab_size;
  const int64_t masked = std::min(v, p.bitmask_words * 32);
  // Row i of the bitmask belongs to batch row row(i): run over positions.
  SamplingRows positions = p.batch;
  positions.rows = nullptr;
  positions.num_seqs = positions.num_rows;
  ForRows<NoScratch>(positions, [&](int64_t i, NoScratch&) {
    float* row = p.logits + p.batch.row(i) * v;
    const uint32_t* words = p.bitmask + i * p.bitmask_words;
    // A word at a time: grammar masks are mostly all-clear words, a few all-set ones.
    for (int64_t base = 0; base < masked; base += 32) {
      const uint32_t word = words[base >> 5];
      const int64_t n = std::min<int64_t>(32, masked - base);
      if (word == ~0u) continue;
      if (word == 0) {
        std::fill(row + base, row + base + n, kNegInf);
        continue;
      }
      // A constant bit per lane (no variable shifts: the baseline ISA vectorizes an AND).
      static constexpr auto kBits = [] {
        std::array<uint32_t, 32> bits{};
        for (int j = 0; j < 32; ++j) bits[j] = 1u << j;
        return bits;
      }();
      float* chunk = row + base;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) chunk[j] = (word & kBits[j]) != 0 ? chunk[j] : kNegInf;
    }
    std::fill(row + masked, row + v, kNegInf);
  });
}

void ApplyPenalties(const PenaltiesParams& p) {
  const int64_t v = p.batch.vocab_size;
  ForRows<PenaltyScratch>(p.batch, [&](int64_t s, PenaltyScratch& ws) {
    float* logits = p.logits + s * v;
    const int32_t* prompt = p.prompt_token_ids + p.prompt_offsets[s];
    const int64_t num_prompt = p.prompt_offsets[s + 1] - p.prompt_offsets[s];
    const int32_t* output = p.output_token_ids + p.output_offsets[s];
    const int64_t num_output = p.output_offsets[s + 1] - p.output_offsets[s];
    if (p.repetition_penalty[s] != 1.0f) {
      ws.penalized.resize(static_cast<size_t>(v), 0);
      const float penalty = p.repetition_penalty[s];
      for (auto [ids, n] : {std::pair(prompt, num_prompt), std::pair(output, num_output)}) {
        for (int64_t j = 0; j < n; ++j) {
          if (ws.penalized[ids[j]]) continue;
          ws.penalized[ids[j]] = 1;
          float& x = logits[ids[j]];
          x = x > 0.0f ? x / penalty : x * penalty;
        }
      }
      for (auto [ids, n] : {std::pair(prompt, num_prompt), std::pair(output, num_output)}) {
        for (int64_t j = 0; j < n; ++j) ws.penalized[ids[j]] = 0;
      }
    }
    const float frequency = p.frequency_penalty[s];
    const float presence = p.presence_penalty[s];
    if (frequency != 0.0f || presence != 0.0f) {
      ws.output_counts.resize(static_cast<size_t>(v), 0);
      for (int64_t j = 0; j < num_output; ++j) ++ws.output_counts[output[j]];
      for (int64_t j = 0; j < num_output; ++j) {
        const int32_t id = output[j];
        const int32_t count = ws.output_counts[id];
        if (count == 0) continue;  // already applied
        // Two steps, as vLLM does: first the frequency term, then the presence term.
        logits[id] -= frequency * static_cast<float>(count);
        logits[id] -= presence;
        ws.output_counts[id] = 0;
      }
    }
  });
}

void Argmax(const ArgmaxParams& p) {
  const int64_t v = p.batch.vocab_size;
  ForRows<NoScratch>(p.batch, [&](int64_t s, NoScratch&) {
    const float* row = p.logits + s * v;
    const float max_value = MaxOf(row, static_cast<size_t>(v));
    // The first index holding the maximum: the lowest id wins ties.
    p.token_ids[s] = static_cast<int32_t>(std::find(row, row + v, max_value) - row);
  });
}

void SoftmaxWeights(const SoftmaxWeightsParams& p) {
  const int64_t v = p.batch.vocab_size;
  ForRows<NoScratch>(p.batch, [&](int64_t s, NoScratch&) {
    float* row = p.logits + s * v;
    const float max_logit = MaxOf(row, static_cast<size_t>(v));
    p.row_max[s] = max_logit;
    const float temperature = p.temperature[s];
    // min_p keeps prob >= min_p * max_prob, i.e. weight >= min_p, as the max's weight is 1.
    const float min_weight = p.min_p[s];
#pragma omp simd
    for (int64_t i = 0; i < v; ++i) {
      const float weight = FastExp<ExpUnderflow::kZero>((row[i] - max_logit) / temperature);
      row[i] = weight < min_weight ? 0.0f : weight;
    }
  });
}

void SampleFromWeights(const SampleFromWeightsParams& p) {
  const int64_t v = p.batch.vocab_size;
  ForRows<DrawScratch>(p.batch, [&](int64_t s, DrawScratch& ws) {
    p.token_ids[s] = DrawRow(p.weights + s * v, static_cast<size_t>(v), p.top_k[s], p.top_p[s],
                             p.uniform[s], ws);
  });
}

}  // namespace pagoda::kernels::cpu
