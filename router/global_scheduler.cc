#include "router/global_scheduler.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/logging.h"
#include "engine/block_pool.h"

namespace pagoda {

// A bounded set of block hashes with least-recently-touched eviction: an intrusive doubly linked
// list over a node vector that stops growing at its capacity, so a warm set allocates nothing.
class GlobalScheduler::RoutedHashes {
 public:
  explicit RoutedHashes(int64_t capacity) : capacity_(capacity) {}

  int64_t size() const { return static_cast<int64_t>(index_.size()); }

  /// How many of `hashes` (a chain, first block first) match from the start.
  int64_t MatchPrefix(absl::Span<const BlockHash> hashes) const {
    int64_t matched = 0;
    while (matched < static_cast<int64_t>(hashes.size()) && index_.contains(hashes[matched])) {
      ++matched;
    }
    return matched;
  }

  /// Inserts `hash` or makes it the most recent, evicting the least recent beyond capacity.
  void Touch(const BlockHash& hash) {
    if (capacity_ == 0) return;
    if (auto it = index_.find(hash); it != index_.end()) {
      Unlink(it->second);
      PushFront(it->second);
      return;
    }
    int32_t node;
    if (static_cast<int64_t>(nodes_.size()) < capacity_) {
      node = static_cast<int32_t>(nodes_.size());
      nodes_.push_back(Node{});
    } else {
      node = tail_;
      Unlink(node);
      index_.erase(nodes_[node].hash);
    }
    nodes_[node].hash = hash;
    index_.emplace(hash, node);
    PushFront(node);
  }

  void Clear() {
    // Swap with empties to hand the memory back: the replica may stay down for long.
    absl::flat_hash_map<BlockHash, int32_t>().swap(index_);
    std::vector<Node>().swap(nodes_);
    head_ = tail_ = -1;
  }

 private:
  struct Node {
    BlockHash hash;
    int32_t prev = -1;  // towards the most recent
    int32_t next = -1;  // towards the least recent
  };

  void Unlink(int32_t node) {
    Node& n = nodes_[node];
    (n.prev >= 0 ? nodes_[n.prev].next : head_) = n.next;
    (n.next >= 0 ? nodes_[n.next].prev : tail_) = n.prev;
    n.prev = n.next = -1;
  }

  void PushFront(int32_t node) {
    nodes_[node].next = head_;
    if (head_ >= 0) nodes_[head_].prev = node;
    head_ = node;
    if (tail_ < 0) tail_ = node;
  }

  const int64_t capacity_;
  absl::flat_hash_map<BlockHash, int32_t> index_;  // hash -> node
  std::vector<Node> nodes_;
  int32_t head_ = -1;  // most recent
  int32_t tail_ = -1;  // least recent: evicted next
};

namespace {

// Orders replicas by load: fewer running + waiting requests, then lower KV usage, then index.
bool LessLoaded(const ReplicaSnapshot& a, int32_t a_index, const ReplicaSnapshot& b,
                int32_t b_index) {
  if (a.load() != b.load()) return a.load() < b.load();
  if (a.kv_cache_usage != b.kv_cache_usage) return a.kv_cache_usage < b.kv_cache_usage;
  return a_index < b_index;
}

int32_t LeastLoaded(absl::Span<const ReplicaSnapshot> replicas,
                    absl::Span<const int32_t> candidates) {
  int32_t best = candidates[0];
  for (int32_t c : candidates) {
    if (LessLoaded(replicas[c], c, replicas[best], best)) best = c;
  }
  return best;
}

// The chain hashes of the prompt's full blocks, first block first.
std::vector<BlockHash> FullBlockHashes(absl::Span<const int32_t> token_ids, int64_t block_size) {
  const int64_t num_blocks = static_cast<int64_t>(token_ids.size()) / block_size;
  std::vector<BlockHash> hashes;
  hashes.reserve(num_blocks);
  BlockHash parent;
  for (int64_t b = 0; b < num_blocks; ++b) {
    parent = HashBlockTokens(parent, token_ids.subspan(b * block_size, block_size),
                             /*extra_key=*/0);
    hashes.push_back(parent);
  }
  return hashes;
}

}  // namespace

absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(const std::string& text) {
  if (text == "round_robin") return RoutingPolicy::kRoundRobin;
  if (text == "least_loaded") return RoutingPolicy::kLeastLoaded;
  if (text == "prefix_aware") return RoutingPolicy::kPrefixAware;
  return absl::InvalidArgumentError(absl::StrCat(
      "routing policy must be round_robin, least_loaded or prefix_aware, got '", text, "'"));
}

std::string_view RoutingPolicyName(RoutingPolicy policy) {
  switch (policy) {
    case RoutingPolicy::kRoundRobin:
      return "round_robin";
    case RoutingPolicy::kLeastLoaded:
      return "least_loaded";
    case RoutingPolicy::kPrefixAware:
      return "prefix_aware";
  }
  return "unknown";
}

absl::Status GlobalSchedulerOptions::Validate() const {
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("global scheduler: block_size must be positive, got ", block_size));
  }
  if (!(default_tokens_per_s > 0)) {  // also refuses NaN
    return absl::InvalidArgumentError(absl::StrCat(
        "global scheduler: default_tokens_per_s must be positive, got ", default_tokens_per_s));
  }
  if (!(rate_ewma_weight > 0 && rate_ewma_weight <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "global scheduler: rate_ewma_weight must be in (0, 1], got ", rate_ewma_weight));
  }
  if (max_routed_hashes_per_replica < 0 ||
      max_routed_hashes_per_replica > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("global scheduler: max_routed_hashes_per_replica must be in [0, 2^31), got ",
                     max_routed_hashes_per_replica));
  }
  return absl::OkStatus();
}

GlobalScheduler::GlobalScheduler(const GlobalSchedulerOptions& options, int32_t num_replicas)
    : options_(options), num_replicas_(num_replicas) {
  // Constructing from unvalidated options is the caller's bug; a zero block size would divide
  // by zero on the first prompt.
  const absl::Status status = options_.Validate();
  PAGODA_CHECK(status.ok() && num_replicas >= 0)
      << "GlobalScheduler: invalid options (" << status << "), num_replicas " << num_replicas;
  routed_.reserve(num_replicas);
  for (int32_t i = 0; i < num_replicas; ++i) {
    routed_.push_back(std::make_unique<RoutedHashes>(options_.max_routed_hashes_per_replica));
  }
  steps_.resize(num_replicas);
}

GlobalScheduler::~GlobalScheduler() = default;

absl::StatusOr<int32_t> GlobalScheduler::Pick(absl::Span<const int32_t> prompt_token_ids,
                                              absl::Span<const ReplicaSnapshot> replicas,
                                              absl::Span<const int32_t> exclude) {
  absl::StatusOr<RoutingDecision> decision = Decide(prompt_token_ids, replicas, exclude);
  if (!decision.ok()) return decision.status();
  return decision->replica;
}

absl::StatusOr<RoutingDecision> GlobalScheduler::Decide(absl::Span<const int32_t> prompt_token_ids,
                                                        absl::Span<const ReplicaSnapshot> replicas,
                                                        absl::Span<const int32_t> exclude) {
  if (static_cast<int64_t>(replicas.size()) != num_replicas_) {
    return absl::InvalidArgumentError(absl::StrCat("global scheduler: ", replicas.size(),
                                                   " snapshots for ", num_replicas_, " replicas"));
  }
  std::vector<int32_t> candidates;  // ascending
  candidates.reserve(num_replicas_);
  for (int32_t i = 0; i < num_replicas_; ++i) {
    if (replicas[i].ready && std::find(exclude.begin(), exclude.end(), i) == exclude.end()) {
      candidates.push_back(i);
    }
  }
  if (candidates.empty()) {
    if (exclude.empty()) return absl::UnavailableError("no replica is ready");
    return absl::UnavailableError(
        absl::StrCat("no replica is ready besides the ", exclude.size(), " excluded"));
  }

  switch (options_.policy) {
    case RoutingPolicy::kRoundRobin: {
      absl::MutexLock lock(&mu_);
      // The first candidate at or after the cursor, wrapping around (candidates are ascending).
      auto it = std::lower_bound(candidates.begin(), candidates.end(), next_round_robin_);
      const int32_t picked = it != candidates.end() ? *it : candidates.front();
      next_round_robin_ = (picked + 1) % num_replicas_;
      ++stats_.routed_round_robin;
      return RoutingDecision{.replica = picked, .reason = RoutingReason::kRoundRobin};
    }
    case RoutingPolicy::kLeastLoaded: {
      const int32_t picked = LeastLoaded(replicas, candidates);
      absl::MutexLock lock(&mu_);
      ++stats_.routed_by_load;
      return RoutingDecision{.replica = picked, .reason = RoutingReason::kLoad};
    }
    case RoutingPolicy::kPrefixAware:
      return PickByPrefix(prompt_token_ids, replicas, candidates);
  }
  return absl::InternalError("unknown routing policy");
}

RoutingDecision GlobalScheduler::PickByPrefix(absl::Span<const int32_t> prompt_token_ids,
                                              absl::Span<const ReplicaSnapshot> replicas,
                                              absl::Span<const int32_t> candidates) {
  // Everything that needs no lock first: the hashes, and the replicas' own answers
  // (each takes its engine's lock).
  const int64_t block_size = options_.block_size;
  const std::vector<BlockHash> hashes = options_.max_routed_hashes_per_replica > 0
                                            ? FullBlockHashes(prompt_token_ids, block_size)
                                            : std::vector<BlockHash>();
  // Like the replica's cache, never count the last token as reusable: a prompt of exactly k
  // blocks reuses at most k - 1 of them.
  const int64_t num_prompt_tokens = static_cast<int64_t>(prompt_token_ids.size());
  const int64_t num_matchable_blocks =
      std::min<int64_t>(static_cast<int64_t>(hashes.size()),
                        std::max<int64_t>(0, num_prompt_tokens - 1) / block_size);
  const absl::Span<const BlockHash> matchable(hashes.data(), num_matchable_blocks);
  std::vector<int64_t> cached_tokens(candidates.size(), 0);
  for (size_t k = 0; k < candidates.size(); ++k) {
    const ReplicaSnapshot& replica = replicas[candidates[k]];
    if (replica.cached_prefix_tokens) {
      cached_tokens[k] = std::max<int64_t>(0, replica.cached_prefix_tokens(prompt_token_ids));
    }
  }

  absl::MutexLock lock(&mu_);
  std::vector<ReplicaRoutingState> states;
  states.reserve(candidates.size());
  for (size_t k = 0; k < candidates.size(); ++k) {
    const int32_t c = candidates[k];
    const ReplicaSnapshot& replica = replicas[c];
    const int64_t reusable =
        std::max(cached_tokens[k], routed_[c]->MatchPrefix(matchable) * block_size);
    states.push_back(ReplicaRoutingState{
        .index = c,
        .queued_prefill_tokens = replica.queued_prefill_tokens,
        .num_running_seqs = replica.num_running_seqs,
        .in_flight_steps = replica.num_in_flight_steps,
        .in_flight_tokens = replica.num_in_flight_tokens,
        .step_token_budget = replica.step_token_budget,
        .step_cost = MeasuredStepCostLocked(c),
        // The cache never reuses the last token; a callback claiming more is capped.
        .cached_tokens = std::min(reusable, std::max<int64_t>(0, num_prompt_tokens - 1))});
  }
  const RoutingChoice choice = ChooseReplica(num_prompt_tokens, states);
  const int32_t picked = candidates[choice.candidate];
  if (spdlog::should_log(spdlog::level::debug)) {  // the inputs of the decision, for tuning
    std::string inputs;
    for (size_t k = 0; k < states.size(); ++k) {
      const ReplicaRoutingState& s = states[k];
      absl::StrAppend(&inputs, k > 0 ? "; " : "", "replica ", s.index, ": ttft ", choice.ttft_s[k],
                      " s, cached ", s.cached_tokens, ", queued ", s.queued_prefill_tokens,
                      ", running ", s.num_running_seqs, ", in flight ", s.in_flight_steps,
                      " steps/", s.in_flight_tokens, " tokens, cost ", s.step_cost.fixed_s, " s + ",
                      s.step_cost.per_token_s, " s/token");
    }
    PAGODA_LOG(debug, "route: {} prompt tokens -> replica {} ({}); {}", num_prompt_tokens, picked,
               RoutingReasonName(choice.reason), inputs);
  }
  switch (choice.reason) {
    case RoutingReason::kPrefixHit:
      ++stats_.routed_by_prefix;
      break;
    case RoutingReason::kOnlyChoice:
      ++stats_.routed_only_choice;
      break;
    case RoutingReason::kLoad:
    case RoutingReason::kRoundRobin:
      ++stats_.routed_by_load;
      break;
  }
  // The picked replica will cache this prompt's blocks. Touch them last block first, so that a
  // prefix, shared by more prompts than any of its extensions, is evicted last.
  for (auto it = hashes.rbegin(); it != hashes.rend(); ++it) routed_[picked]->Touch(*it);
  return RoutingDecision{.replica = picked, .reason = choice.reason};
}

void GlobalScheduler::ObserveStep(int32_t replica, int64_t num_prefill_tokens,
                                  int64_t num_decode_tokens, double seconds) {
  const int64_t num_tokens =
      std::max<int64_t>(0, num_prefill_tokens) + std::max<int64_t>(0, num_decode_tokens);
  if (replica < 0 || replica >= num_replicas_ || num_tokens <= 0 || !(seconds > 0)) return;
  absl::MutexLock lock(&mu_);
  StepAverage& average = num_prefill_tokens > 0 ? steps_[replica].prefill : steps_[replica].decode;
  if (average.seconds == 0) {
    average = StepAverage{.tokens = static_cast<double>(num_tokens), .seconds = seconds};
    return;
  }
  // Averaging tokens and seconds apart weighs each step by its length: a rate averaged per
  // step would let many small steps outvote the large prefills the estimate is about.
  const double w = options_.rate_ewma_weight;
  average.tokens += w * (static_cast<double>(num_tokens) - average.tokens);
  average.seconds += w * (seconds - average.seconds);
}

StepCost GlobalScheduler::MeasuredStepCost(int32_t replica) const {
  absl::MutexLock lock(&mu_);
  return MeasuredStepCostLocked(replica);
}

std::optional<StepCost> GlobalScheduler::FitStepCost(const StepSamples& samples) {
  const StepAverage& prefill = samples.prefill;
  const StepAverage& decode = samples.decode;
  if (prefill.seconds == 0) return std::nullopt;
  const StepCost proportional{.fixed_s = 0, .per_token_s = prefill.seconds / prefill.tokens};
  if (decode.seconds == 0 || prefill.tokens < 2 * decode.tokens) return proportional;
  const double slope = (prefill.seconds - decode.seconds) / (prefill.tokens - decode.tokens);
  const double fixed = decode.seconds - slope * decode.tokens;
  if (!(slope > 0) || !(fixed > 0)) return proportional;
  return StepCost{.fixed_s = fixed, .per_token_s = slope};
}

StepCost GlobalScheduler::MeasuredStepCostLocked(int32_t replica) const {
  if (replica >= 0 && replica < num_replicas_) {
    if (std::optional<StepCost> cost = FitStepCost(steps_[replica])) return *cost;
  }
  StepCost sum;
  int64_t measured = 0;
  for (const StepSamples& samples : steps_) {
    if (std::optional<StepCost> cost = FitStepCost(samples)) {
      sum.fixed_s += cost->fixed_s;
      sum.per_token_s += cost->per_token_s;
      ++measured;
    }
  }
  if (measured == 0)
    return StepCost{.fixed_s = 0, .per_token_s = 1 / options_.default_tokens_per_s};
  return StepCost{.fixed_s = sum.fixed_s / static_cast<double>(measured),
                  .per_token_s = sum.per_token_s / static_cast<double>(measured)};
}

void GlobalScheduler::Reset(int32_t replica) {
  if (replica < 0 || replica >= num_replicas_) return;
  absl::MutexLock lock(&mu_);
  routed_[replica]->Clear();
}

GlobalScheduler::Stats GlobalScheduler::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int64_t GlobalScheduler::NumRoutedHashes(int32_t replica) const {
  if (replica < 0 || replica >= num_replicas_) return 0;
  absl::MutexLock lock(&mu_);
  return routed_[replica]->size();
}

}  // namespace pagoda
