// BlockPool: the physical KV cache blocks of one memory (device or host), with reference counts,
// an O(1) free list and the automatic prefix cache (block hash -> block id).
//
// A block is either referenced (ref count > 0) or free (ref count 0, on the free list). A free
// block may still be *cached*: it keeps the hash of the full block of tokens it holds, so a later
// sequence with the same prefix can take it back (IncRef) instead of recomputing it. Allocation
// pops the head of the free list and evicts the cached content of the block it takes.
//
// Free-list order (head = next to reuse):
//   - uncached blocks that are freed go to the head: they hold nothing worth keeping;
//   - cached blocks that are freed go to the tail, so unreferenced cached blocks are evicted in
//     LRU order (freed last, evicted last). Callers free a sequence's blocks tail first, so its
//     prefix blocks, the likeliest to be shared again, stay longest (as vLLM V1 does).
// The list is intrusive and doubly linked, so a cached block can leave the middle in O(1).
//
//   BlockPool pool(/*num_blocks=*/1024, /*enable_caching=*/true);
//   std::vector<int32_t> blocks;
//   if (!pool.Allocate(3, &blocks)) { ... preempt ... }
//   pool.CacheBlock(blocks[0], HashBlockTokens(BlockHash{}, first_16_tokens, /*extra_key=*/0));
//   pool.DecRef(blocks[2]);  // free tail first
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace pagoda {

/// The 128-bit identity of a full block of tokens together with everything before it (a hash
/// chain). BlockHash{} is the parent of a sequence's first block.
struct BlockHash {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const BlockHash& a, const BlockHash& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockHash& b) {
    return H::combine(std::move(h), b.hi, b.lo);
  }
};

/// hash(block i) = H(hash(block i - 1), token ids of block i, extra_key).
///
/// H is two independent 64-bit lanes, each an xxHash64-style accumulator (acc = rotl(acc +
/// word * p2, r) * p1, a bijection in both the state and the word, so inputs that differ in a
/// single word never collide) over the parent hash, the extra key, the token count and the
/// tokens, finished by the murmur3 avalanche; the lanes use different primes and seeds. For
/// non-adversarial inputs a collision needs a coincidence in both lanes, about 2^-128 per pair
/// of blocks. It is not cryptographic: tenants that must not learn of each other's prompts should
/// get distinct extra keys (a per-tenant cache salt). Deterministic across processes and runs.
///
/// `extra_key` folds anything besides the tokens that changes the KV content (a LoRA adapter, a
/// cache salt, multimodal inputs); 0 means none.
BlockHash HashBlockTokens(const BlockHash& parent, absl::Span<const int32_t> token_ids,
                          uint64_t extra_key);

/// A 64-bit extra key from text (a LoRA name, a cache salt), for HashBlockTokens.
uint64_t ExtraKeyFromString(std::string_view text);

class BlockPool {
 public:
  /// Blocks 0..num_blocks-1, all free. With caching off, CacheBlock is a no-op.
  BlockPool(int32_t num_blocks, bool enable_caching);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_blocks() const { return num_blocks_; }
  bool caching_enabled() const { return enable_caching_; }

  /// Blocks with no reference (cached or not): what Allocate can hand out.
  int32_t NumFreeBlocks() const { return num_free_; }
  /// Unreferenced or not, blocks whose hash is in the prefix cache.
  int32_t NumCachedBlocks() const { return static_cast<int32_t>(cached_.size()); }
  /// Share of blocks referenced, in [0, 1] (pagoda:kv_cache_usage_perc).
  double Usage() const;

  /// Appends `n` blocks, each with one reference and no hash, to `out`, evicting the least
  /// recently freed cached blocks as needed. All or nothing: false, and nothing taken, when
  /// fewer than `n` blocks are free.
  bool Allocate(int32_t n, std::vector<int32_t>* out);

  /// Takes one more reference; a free (cached) block leaves the free list.
  void IncRef(int32_t block);
  /// Drops one reference; at zero the block joins the free list (see the order above).
  void DecRef(int32_t block);

  /// The cached block holding `hash`, or -1.
  int32_t Lookup(const BlockHash& hash) const;
  /// Registers a referenced, full block under `hash`. No-op (false) when caching is off, the
  /// block already has a hash, or another block already holds `hash` (a duplicate computed
  /// concurrently: the first one stays the cached copy).
  bool CacheBlock(int32_t block, const BlockHash& hash);
  /// Forgets the block's hash (its content is not what the hash says, e.g. never computed).
  void UncacheBlock(int32_t block);

  int32_t RefCount(int32_t block) const { return ref_count_[Index(block)]; }
  /// The block's hash, or nullptr when it is not cached.
  const BlockHash* HashOf(int32_t block) const;

  /// The free-block ids from next-to-reuse to last (tests and debugging; O(free blocks)).
  std::vector<int32_t> FreeListForTesting() const;

  /// Walks every block (O(num_blocks), tests only): the free list holds exactly the
  /// unreferenced blocks, once each, linked both ways; the free count matches; the hash map and
  /// the per-block hashes agree.
  absl::Status CheckInvariants() const;

 private:
  size_t Index(int32_t block) const;
  void PushFront(int32_t block);
  void PushBack(int32_t block);
  void Unlink(int32_t block);
  void EraseHash(int32_t block);

  const int32_t num_blocks_;
  const bool enable_caching_;
  int32_t num_free_ = 0;
  std::vector<int32_t> ref_count_;
  // Intrusive free list over block ids; index num_blocks_ is the sentinel.
  std::vector<int32_t> prev_;
  std::vector<int32_t> next_;
  std::vector<BlockHash> hash_;
  std::vector<bool> has_hash_;
  absl::flat_hash_map<BlockHash, int32_t> cached_;
};

}  // namespace pagoda
