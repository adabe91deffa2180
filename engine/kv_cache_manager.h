// KVCacheManager: the block tables of every live sequence of one replica, over a device
// BlockPool (with the automatic prefix cache) and an optional host BlockPool (swap space).
//
// Sequences are named by a caller-chosen integer handle (SeqHandle), unique among the live
// sequences; the scheduler maps its string seq ids to handles once. A sequence comes to life at
// its first AllocateSlots (or as the child of a Fork) and ends at Free.
//
// One plan round: between two TakeBlockCopies calls the scheduler builds one StepPlan.
//
//   KVCacheManager kv({.num_device_blocks = 4096, .block_size = 16,
//                      .enable_prefix_caching = true});
//   PrefixMatch hit = kv.GetComputedBlocks(request.token_ids);      // admission
//   if (!kv.AllocateSlots(h, num_prompt_tokens - hit.num_computed_tokens, 0, &hit)) { wait }
//   kv.CacheBlocks(h, request.token_ids);                           // register full blocks
//   if (!kv.AllocateSlots(h2, /*num_new_tokens=*/1)) { preempt the newest, retry }
//   new_seq.block_ids = kv.TakeNewBlockIds(h);                      // whole table: new to workers
//   cached_seq.new_block_ids = kv.TakeNewBlockIds(h2);              // only the delta
//   plan.block_copies = kv.TakeBlockCopies();                       // last call for this plan
//
// Rules the scheduler keeps (checked where cheap):
//   - Write positions: AllocateSlots(seq, n, k) lets the plan write KV positions
//     [NumTokens, NumTokens + n + k) and advances NumTokens by n (the tokens whose KV is computed
//     or scheduled). A k-step decode plan passes n = k; lookahead slots are reserved, not counted.
//   - Copy-on-write: AllocateSlots moves a writer off every block it shares (after Fork) that
//     the plan writes into: it takes a fresh block, adds a (src, dst) copy to the plan when the
//     block holds positions the writer keeps (both stay pinned until TakeBlockCopies), and drops
//     its reference to the shared one. An entry the workers already hold changes then:
//     TakeReplacedBlockIds reports it as (index, new block), which the scheduler sends as
//     CachedSequence::replaced_block_ids and the workers apply before new_block_ids; an entry
//     not sent yet simply goes out with TakeNewBlockIds. The last sharer to write finds the block
//     no longer shared and writes it in place, so the order in which sharers are allocated
//     decides which of them copy, not the outcome.
//   - Fork and SwapOut refuse a sequence already allocated (or swapped in) in the plan being
//     built: its blocks have writes or transfers pending in that plan. Fork first, then allocate.
//   - Do not Free a sequence allocated in the plan being built unless it drops out of the plan;
//     its newly cached blocks are uncached then (their KV will never be computed), and it is a
//     broken invariant (abort) if another sequence already hit one of them.
//   - Blocks read or written by this plan's copies and the host blocks read by its swap-ins stay
//     pinned (not reusable) until TakeBlockCopies, because workers apply swap-outs, then swap-ins,
//     then copies, before the forward pass (common/step.h).
//
// KV cache groups (hybrid models, docs/architecture.md "KV cache groups"): with
// Options::group_sliding_windows a sequence keeps one block table per group, all over the one
// device pool; each logical block has an entry in every group, and a sliding group frees its
// entries behind its own window. A block belongs to one group at a time. The per-sequence calls
// without a `group` argument speak of group 0; with one group (the default) everything is as
// before groups existed.
//
// Costs grow with the blocks touched: AllocateSlots with the blocks it adds or copies, Free and
// the swaps with the sequence's blocks, TakeNewBlockIds with the delta. Nothing scans the pool,
// except CheckInvariants (tests).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/step/step.h"
#include "engine/block_pool.h"

namespace pagoda {

using SeqHandle = int64_t;
using BlockPair = std::pair<int32_t, int32_t>;

/// The longest cached prefix of a token sequence (full blocks only, never the last token).
struct PrefixMatch {
  std::vector<int32_t> block_ids;                    // cached device blocks of group 0, in order
  std::vector<std::vector<int32_t>> more_block_ids;  // groups 1..G-1, each as long as block_ids
  std::vector<BlockHash> block_hashes;               // their chain hashes
  int64_t num_computed_tokens = 0;                   // block_ids.size() * block_size
  int64_t num_queried_tokens = 0;  // the sequence's length when caching is on, else 0
  uint64_t extra_key = 0;          // the key the hashes were taken with
};

class KVCacheManager {
 public:
  struct Options {
    int32_t num_device_blocks = 0;
    int32_t num_host_blocks = 0;  // 0: no swap space
    int32_t block_size = 16;      // tokens per block
    bool enable_prefix_caching = false;
    /// > 0: the model attends to the last sliding_window positions in every layer. AllocateSlots
    /// then gives back the blocks wholly before the window of the positions it schedules; their
    /// entries read kFreedBlockId (common/step/step.h), and a cached one stays in the prefix cache.
    int64_t sliding_window = 0;
    /// KV cache groups: one window per group (0: full attention). Empty: one group whose window
    /// is sliding_window (which must be 0 otherwise).
    std::vector<int64_t> group_sliding_windows;
  };

  explicit KVCacheManager(const Options& options);
  KVCacheManager(const KVCacheManager&) = delete;
  KVCacheManager& operator=(const KVCacheManager&) = delete;

  // --- Prefix cache -----------------------------------------------------------------------
  /// Looks up the longest cached prefix of full blocks, leaving at least the last token to
  /// compute. Takes no references: pass the result to AllocateSlots before any other call that
  /// can allocate. Empty when caching is off. `extra_key`: see HashBlockTokens.
  PrefixMatch GetComputedBlocks(absl::Span<const int32_t> token_ids, uint64_t extra_key = 0) const;

  /// The chain hashes of the full blocks of token_ids that a lookup may match (so never the
  /// block holding the last token), for NumLeadingCachedBlocks. Needs no manager: callers on
  /// other threads hash without holding the lock that guards one.
  static std::vector<BlockHash> PrefixBlockHashes(absl::Span<const int32_t> token_ids,
                                                  int64_t block_size, uint64_t extra_key = 0);
  /// How many leading blocks of a PrefixBlockHashes chain are in the prefix cache now
  /// (referenced or evictable) in every group: what GetComputedBlocks would match. 0 when
  /// caching is off.
  int64_t NumLeadingCachedBlocks(absl::Span<const BlockHash> block_hashes) const;

  /// Registers the sequence's full blocks not yet registered, hashing token_ids (all tokens of
  /// the sequence the scheduler knows). Only positions below NumTokens count (their KV is
  /// computed or scheduled). No-op when caching is off.
  void CacheBlocks(SeqHandle seq, absl::Span<const int32_t> token_ids);

  // --- Allocation -------------------------------------------------------------------------
  /// Free device blocks AllocateSlots with the same arguments would consume (fresh blocks,
  /// copy-on-write blocks, cached prefix blocks taken off the free list). It succeeds exactly when
  /// this is <= NumFreeBlocks().
  int64_t NumBlocksNeeded(SeqHandle seq, int64_t num_new_tokens, int64_t num_lookahead_tokens = 0,
                          const PrefixMatch* prefix = nullptr) const;

  /// Grows the block table to cover num_new_tokens + num_lookahead_tokens positions after
  /// NumTokens (copying shared blocks first), then advances NumTokens by num_new_tokens. With a
  /// sliding window it then frees the blocks no query from the old NumTokens on can see. An
  /// unknown `seq` is created, starting from `prefix` (a GetComputedBlocks result taken just
  /// before; references are taken on its blocks and the prefix cache counters advance) or empty.
  /// All or nothing: false, and nothing changes, when the free blocks do not suffice.
  bool AllocateSlots(SeqHandle seq, int64_t num_new_tokens, int64_t num_lookahead_tokens = 0,
                     const PrefixMatch* prefix = nullptr);

  /// Speculative decoding: advances NumTokens by `num_tokens` lookahead positions an earlier
  /// AllocateSlots reserved (the accepted drafts, whose KV the plan computed). The rejected
  /// ones stay reserved, to be overwritten. The positions must lie in the block table.
  void CommitLookaheadSlots(SeqHandle seq, int64_t num_tokens);

  /// Drops the sequence's blocks (tail first, so its prefix stays cached longest) and forgets
  /// it. Unknown sequences are ignored.
  void Free(SeqHandle seq);

  /// A new sequence `child` whose block table shares the parent's blocks up to NumTokens (ref
  /// counts +1), for n > 1 and beam search. FailedPrecondition when the parent was allocated or
  /// swapped in in the plan being built, or is swapped out; AlreadyExists for a live child.
  absl::Status Fork(SeqHandle parent, SeqHandle child);

  // --- Deltas for the StepPlan --------------------------------------------------------------
  /// The block-table entries the workers do not hold yet: the whole table for a sequence they
  /// have no state for (new, forked, resumed), else the blocks appended since the last call.
  std::vector<int32_t> TakeNewBlockIds(SeqHandle seq, int group = 0);
  /// (index, new block) for entries the workers hold that copy-on-write replaced since the last
  /// call. Empty unless a sent sequence wrote into a block it shared.
  std::vector<BlockPair> TakeReplacedBlockIds(SeqHandle seq, int group = 0);
  /// The (src, dst) device block copies of this plan. Ends the plan round: releases the pins of
  /// this round's copies and swap-ins. Call once per StepPlan, after every other call for it.
  std::vector<BlockPair> TakeBlockCopies();

  // --- Swap (preemption mode swap) ---------------------------------------------------------
  /// Moves the blocks only this sequence holds to host blocks and frees them on the device;
  /// returns (device, host) pairs for StepPlan::swap_out. Blocks shared with any other sequence
  /// (live or swapped out) stay on the device, still referenced by this one, so sharing needs
  /// no bookkeeping and a swapped group frees what is freeable. The workers drop the sequence's
  /// state (put it in finished_seq_ids). Errors: NotFound; FailedPrecondition (no swap space,
  /// already swapped out, allocated in this plan); ResourceExhausted (host blocks short).
  absl::StatusOr<std::vector<BlockPair>> SwapOut(SeqHandle seq);
  /// Whether SwapIn would find enough free device blocks now.
  bool CanSwapIn(SeqHandle seq) const;
  /// Brings a swapped-out sequence back; returns (host, device) pairs for StepPlan::swap_in.
  /// Blocks whose content is still in the prefix cache are taken from it without a transfer.
  /// The sequence is then new to the workers (TakeNewBlockIds gives its whole table).
  absl::StatusOr<std::vector<BlockPair>> SwapIn(SeqHandle seq);

  // --- Queries ------------------------------------------------------------------------------
  bool Contains(SeqHandle seq) const { return seqs_.contains(seq); }
  bool IsSwappedOut(SeqHandle seq) const;
  /// Tokens whose KV is computed or scheduled (0 for an unknown sequence).
  int64_t NumTokens(SeqHandle seq) const;
  /// Device block ids; entries of a swapped-out sequence that live on the host read as
  /// -(host block + 1), blocks freed behind a sliding window as kFreedBlockId.
  absl::Span<const int32_t> BlockTable(SeqHandle seq, int group = 0) const;
  size_t NumSequences() const { return seqs_.size(); }

  /// KV cache groups (1 without Options::group_sliding_windows) and each one's window.
  int num_groups() const { return static_cast<int>(windows_.size()); }
  int64_t group_sliding_window(int group) const { return windows_[group]; }
  /// The prefix-cache key of group `group`'s copy of the block with chain hash `hash`: `hash`
  /// itself for group 0, HashBlockTokens(hash, {}, group) (no tokens: never a token block's
  /// hash) for the others.
  static BlockHash GroupBlockHash(const BlockHash& hash, int group);

  int32_t block_size() const { return block_size_; }
  int32_t NumFreeBlocks() const { return device_.NumFreeBlocks(); }
  int32_t NumFreeHostBlocks() const { return host_.NumFreeBlocks(); }
  /// Share of device blocks referenced, in [0, 1].
  double Usage() const { return device_.Usage(); }
  /// Tokens looked up at admissions / found cached (pagoda:prefix_cache_{queries,hits}_total).
  int64_t prefix_cache_queries() const { return prefix_cache_queries_; }
  int64_t prefix_cache_hits() const { return prefix_cache_hits_; }
  const BlockPool& device_pool() const { return device_; }
  const BlockPool& host_pool() const { return host_; }

  /// O(all blocks), for tests: both pools are consistent; every reference count equals the
  /// number of block-table entries naming the block plus its pins; each sequence's hashes agree
  /// with its cached blocks; no block is in the write range of two sequences in this plan, nor
  /// named by the tables of two groups; a sequence's tables have one length.
  absl::Status CheckInvariants() const;

 private:
  /// One group's block table of a sequence.
  struct Table {
    std::vector<int32_t> blocks;  // device id, or -(host id + 1) while swapped out
    size_t num_freed_blocks = 0;  // leading entries freed behind the group's sliding window
    size_t num_sent_blocks = 0;   // leading entries the workers hold
    std::vector<BlockPair> replaced;
  };
  struct SeqState {
    absl::InlinedVector<Table, 1> tables;  // one per group, all of one length
    std::vector<BlockHash> block_hashes;   // chain hashes of the leading full blocks
    int64_t num_tokens = 0;
    uint64_t extra_key = 0;
    bool swapped_out = false;
    int64_t touched_round = -1;  // the plan round of the last allocation or swap-in
    int64_t write_begin = 0;     // positions this round's plan writes: [write_begin, num_tokens
    int64_t write_end = 0;       //   + lookahead) = [write_begin, write_end)
  };

  int64_t BlocksFor(int64_t num_tokens) const {
    return (num_tokens + block_size_ - 1) / block_size_;
  }
  /// One past the last block index this round's plan writes for `state` (none: write_begin / bs).
  int64_t WriteEndBlock(const SeqState& state) const {
    if (state.write_end <= state.write_begin) return state.write_begin / block_size_;
    return std::min<int64_t>(BlocksFor(state.write_end), state.tables[0].blocks.size());
  }
  /// Whether a device block is named by more than one table entry (pins excluded).
  bool Shared(int32_t block) const { return device_.RefCount(block) - pins_[block] > 1; }
  void Pin(int32_t block);
  /// Frees the table's blocks wholly before position first_visible (sliding window).
  void FreeBlocksBefore(Table& table, int64_t first_visible);
  /// The cached device block holding group `group`'s copy of the block with chain hash `hash`.
  int32_t LookupGroup(const BlockHash& hash, int group) const {
    return device_.Lookup(GroupBlockHash(hash, group));
  }
  /// Device blocks a swap-in of `state` would take off the free list.
  int64_t SwapInCost(const SeqState& state) const;

  const int32_t block_size_;
  const std::vector<int64_t> windows_;  // per group; 0: full attention
  BlockPool device_;
  BlockPool host_;
  absl::flat_hash_map<SeqHandle, SeqState> seqs_;
  int64_t round_ = 0;
  std::vector<BlockPair> copies_;       // this round's (src, dst)
  std::vector<int32_t> pins_;           // per device block: pins held this round
  std::vector<int32_t> pinned_device_;  // blocks pinned this round (with repeats)
  std::vector<int32_t> pinned_host_;    // host blocks read by this round's swap-ins
  int64_t prefix_cache_queries_ = 0;
  int64_t prefix_cache_hits_ = 0;
};

}  // namespace pagoda
