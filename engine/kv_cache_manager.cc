#include "engine/kv_cache_manager.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

int32_t HostEntry(int32_t host_block) { return -(host_block + 1); }
int32_t HostBlockOf(int32_t entry) { return -entry - 1; }

std::vector<int64_t> GroupWindows(const KVCacheManager::Options& options) {
  if (options.group_sliding_windows.empty()) return {options.sliding_window};
  PAGODA_CHECK(options.sliding_window == 0)
      << "sliding_window and group_sliding_windows are exclusive";
  return options.group_sliding_windows;
}

}  // namespace

KVCacheManager::KVCacheManager(const Options& options)
    : block_size_(options.block_size),
      windows_(GroupWindows(options)),
      device_(options.num_device_blocks, options.enable_prefix_caching),
      host_(options.num_host_blocks, /*enable_caching=*/false),
      pins_(options.num_device_blocks, 0) {
  PAGODA_CHECK(options.block_size >= 1) << "block_size must be positive";
  for (int64_t window : windows_) {
    PAGODA_CHECK(window >= 0) << "sliding windows must not be negative";
  }
}

BlockHash KVCacheManager::GroupBlockHash(const BlockHash& hash, int group) {
  if (group == 0) return hash;
  return HashBlockTokens(hash, {}, static_cast<uint64_t>(group));
}

PrefixMatch KVCacheManager::GetComputedBlocks(absl::Span<const int32_t> token_ids,
                                              uint64_t extra_key) const {
  PrefixMatch match;
  match.more_block_ids.resize(windows_.size() - 1);
  if (!device_.caching_enabled()) return match;
  match.extra_key = extra_key;
  match.num_queried_tokens = static_cast<int64_t>(token_ids.size());
  if (token_ids.empty()) return match;
  // The last token is always computed, so that the step has logits to sample from.
  const size_t max_blocks = (token_ids.size() - 1) / block_size_;
  std::vector<int32_t> more(windows_.size() - 1);
  BlockHash parent;
  for (size_t i = 0; i < max_blocks; ++i) {
    const BlockHash hash =
        HashBlockTokens(parent, token_ids.subspan(i * block_size_, block_size_), extra_key);
    const int32_t block = device_.Lookup(hash);
    if (block < 0) break;
    // A hit must hold in every group.
    bool all = true;
    for (size_t g = 1; g < windows_.size() && all; ++g) {
      more[g - 1] = LookupGroup(hash, static_cast<int>(g));
      all = more[g - 1] >= 0;
    }
    if (!all) break;
    match.block_ids.push_back(block);
    for (size_t g = 1; g < windows_.size(); ++g) match.more_block_ids[g - 1].push_back(more[g - 1]);
    match.block_hashes.push_back(hash);
    parent = hash;
  }
  match.num_computed_tokens = static_cast<int64_t>(match.block_ids.size()) * block_size_;
  return match;
}

std::vector<BlockHash> KVCacheManager::PrefixBlockHashes(absl::Span<const int32_t> token_ids,
                                                         int64_t block_size, uint64_t extra_key) {
  std::vector<BlockHash> hashes;
  if (token_ids.empty() || block_size < 1) return hashes;
  const size_t size = static_cast<size_t>(block_size);
  const size_t max_blocks = (token_ids.size() - 1) / size;  // as GetComputedBlocks
  hashes.reserve(max_blocks);
  BlockHash parent;
  for (size_t i = 0; i < max_blocks; ++i) {
    parent = HashBlockTokens(parent, token_ids.subspan(i * size, size), extra_key);
    hashes.push_back(parent);
  }
  return hashes;
}

int64_t KVCacheManager::NumLeadingCachedBlocks(absl::Span<const BlockHash> block_hashes) const {
  if (!device_.caching_enabled()) return 0;
  int64_t n = 0;
  for (; n < static_cast<int64_t>(block_hashes.size()); ++n) {
    for (int g = 0; g < num_groups(); ++g) {
      if (LookupGroup(block_hashes[n], g) < 0) return n;
    }
  }
  return n;
}

void KVCacheManager::CacheBlocks(SeqHandle seq, absl::Span<const int32_t> token_ids) {
  if (!device_.caching_enabled()) return;
  auto it = seqs_.find(seq);
  PAGODA_CHECK(it != seqs_.end()) << "CacheBlocks of an unknown sequence";
  SeqState& state = it->second;
  if (state.swapped_out) return;
  const int64_t known = std::min<int64_t>(static_cast<int64_t>(token_ids.size()), state.num_tokens);
  const size_t num_full = static_cast<size_t>(known / block_size_);
  BlockHash parent = state.block_hashes.empty() ? BlockHash{} : state.block_hashes.back();
  for (size_t i = state.block_hashes.size(); i < num_full; ++i) {
    const BlockHash hash =
        HashBlockTokens(parent, token_ids.subspan(i * block_size_, block_size_), state.extra_key);
    state.block_hashes.push_back(hash);
    // false for a duplicate: this copy stays private. A block freed behind the window keeps only
    // its hash, the parent of the next.
    for (int g = 0; g < num_groups(); ++g) {
      const int32_t block = state.tables[g].blocks[i];
      if (block != kFreedBlockId) device_.CacheBlock(block, GroupBlockHash(hash, g));
    }
    parent = hash;
  }
}

int64_t KVCacheManager::NumBlocksNeeded(SeqHandle seq, int64_t num_new_tokens,
                                        int64_t num_lookahead_tokens,
                                        const PrefixMatch* prefix) const {
  PAGODA_CHECK(num_new_tokens >= 0 && num_lookahead_tokens >= 0) << "negative token count";
  auto it = seqs_.find(seq);
  const SeqState* state = it == seqs_.end() ? nullptr : &it->second;
  PAGODA_CHECK(state == nullptr || prefix == nullptr) << "a PrefixMatch for a live sequence";
  PAGODA_CHECK(state == nullptr || !state->swapped_out) << "allocating for a swapped-out sequence";
  int64_t cost = 0;
  int64_t num_tokens = 0;
  int64_t num_blocks = 0;
  if (prefix != nullptr) {
    for (int32_t block : prefix->block_ids) {
      if (device_.RefCount(block) == 0) ++cost;  // leaves the free list
    }
    for (const std::vector<int32_t>& ids : prefix->more_block_ids) {
      for (int32_t block : ids) {
        if (device_.RefCount(block) == 0) ++cost;
      }
    }
    num_tokens = prefix->num_computed_tokens;
    num_blocks = static_cast<int64_t>(prefix->block_ids.size());
  } else if (state != nullptr) {
    num_tokens = state->num_tokens;
    num_blocks = static_cast<int64_t>(state->tables[0].blocks.size());
  }
  const int64_t needed = BlocksFor(num_tokens + num_new_tokens + num_lookahead_tokens);
  cost += num_groups() * std::max<int64_t>(0, needed - num_blocks);
  if (state != nullptr) {
    for (const Table& table : state->tables) {
      for (int64_t i = num_tokens / block_size_; i < std::min(num_blocks, needed); ++i) {
        if (Shared(table.blocks[i])) ++cost;  // copy-on-write
      }
    }
  }
  return cost;
}

bool KVCacheManager::AllocateSlots(SeqHandle seq, int64_t num_new_tokens,
                                   int64_t num_lookahead_tokens, const PrefixMatch* prefix) {
  if (NumBlocksNeeded(seq, num_new_tokens, num_lookahead_tokens, prefix) > NumFreeBlocks()) {
    return false;
  }
  auto [it, inserted] = seqs_.try_emplace(seq);
  SeqState& state = it->second;
  if (inserted) state.tables.resize(windows_.size());
  if (prefix != nullptr) {
    PAGODA_CHECK(prefix->block_ids.size() == prefix->block_hashes.size() &&
                 prefix->more_block_ids.size() + 1 == windows_.size() &&
                 prefix->num_computed_tokens ==
                     static_cast<int64_t>(prefix->block_ids.size()) * block_size_)
        << "malformed PrefixMatch";
    for (int g = 0; g < num_groups(); ++g) {
      const std::vector<int32_t>& ids = g == 0 ? prefix->block_ids : prefix->more_block_ids[g - 1];
      PAGODA_CHECK(ids.size() == prefix->block_hashes.size()) << "malformed PrefixMatch";
      for (size_t i = 0; i < ids.size(); ++i) {
        const BlockHash* hash = device_.HashOf(ids[i]);
        PAGODA_CHECK(hash != nullptr && *hash == GroupBlockHash(prefix->block_hashes[i], g))
            << "stale PrefixMatch: a block was evicted since GetComputedBlocks";
        device_.IncRef(ids[i]);
      }
      state.tables[g].blocks = ids;
    }
    state.block_hashes = prefix->block_hashes;
    state.num_tokens = prefix->num_computed_tokens;
    state.extra_key = prefix->extra_key;
    prefix_cache_queries_ += prefix->num_queried_tokens;
    prefix_cache_hits_ += prefix->num_computed_tokens;
  }

  const int64_t begin = state.num_tokens;
  const int64_t end = begin + num_new_tokens + num_lookahead_tokens;
  const int64_t needed = BlocksFor(end);
  const int64_t num_blocks = static_cast<int64_t>(state.tables[0].blocks.size());
  for (Table& table : state.tables) {
    // Copy-on-write: give the writer a fresh block for every shared block it writes into; copy
    // the block only when it holds positions before `begin` (data the writer must keep).
    for (int64_t i = begin / block_size_; i < std::min(num_blocks, needed); ++i) {
      const int32_t shared = table.blocks[i];
      if (!Shared(shared)) continue;
      std::vector<int32_t> fresh;
      PAGODA_CHECK(device_.Allocate(1, &fresh)) << "free blocks miscounted";
      if (i * block_size_ < begin) {
        copies_.emplace_back(shared, fresh[0]);
        Pin(shared);
        Pin(fresh[0]);
      }
      device_.DecRef(shared);
      table.blocks[i] = fresh[0];
      if (static_cast<size_t>(i) < table.num_sent_blocks) table.replaced.emplace_back(i, fresh[0]);
    }
    if (needed > num_blocks) {
      PAGODA_CHECK(device_.Allocate(static_cast<int32_t>(needed - num_blocks), &table.blocks))
          << "free blocks miscounted";
    }
  }
  if (state.touched_round != round_) {
    state.touched_round = round_;
    state.write_begin = begin;
    state.write_end = end;
  } else {
    state.write_end = std::max(state.write_end, end);
  }
  state.num_tokens = begin + num_new_tokens;
  // The plan's first query of this sequence sits at write_begin (an earlier allocation in the
  // same round may have scheduled positions before `begin`).
  for (int g = 0; g < num_groups(); ++g) {
    if (windows_[g] > 0) FreeBlocksBefore(state.tables[g], state.write_begin - windows_[g] + 1);
  }
  return true;
}

void KVCacheManager::FreeBlocksBefore(Table& table, int64_t first_visible) {
  const size_t end = static_cast<size_t>(std::max<int64_t>(0, first_visible) / block_size_);
  for (; table.num_freed_blocks < end; ++table.num_freed_blocks) {
    int32_t& entry = table.blocks[table.num_freed_blocks];
    device_.DecRef(entry);  // a cached block stays in the prefix cache, evictable
    entry = kFreedBlockId;
  }
}

void KVCacheManager::CommitLookaheadSlots(SeqHandle seq, int64_t num_tokens) {
  auto it = seqs_.find(seq);
  PAGODA_CHECK(it != seqs_.end()) << "CommitLookaheadSlots of unknown sequence " << seq;
  SeqState& state = it->second;
  PAGODA_CHECK(!state.swapped_out && num_tokens >= 0 &&
               BlocksFor(state.num_tokens + num_tokens) <=
                   static_cast<int64_t>(state.tables[0].blocks.size()))
      << "CommitLookaheadSlots(" << seq << ", " << num_tokens << ") past its reserved slots";
  state.num_tokens += num_tokens;
}

void KVCacheManager::Free(SeqHandle seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqState& state = it->second;
  if (state.touched_round == round_ && !state.swapped_out) {
    // Blocks cached from this plan's writes will never be computed now.
    for (const Table& table : state.tables) {
      for (int64_t i = state.write_begin / block_size_; i < WriteEndBlock(state); ++i) {
        const int32_t block = table.blocks[i];
        if (device_.HashOf(block) == nullptr) continue;
        PAGODA_CHECK(!Shared(block))
            << "freed a sequence of the plan being built after another sequence hit "
               "blocks it was to compute";
        device_.UncacheBlock(block);
      }
    }
  }
  // Tail first in every group, so the sequence's prefix stays cached longest.
  for (size_t i = state.tables[0].blocks.size(); i-- > 0;) {
    for (const Table& table : state.tables) {
      const int32_t entry = table.blocks[i];
      if (entry == kFreedBlockId) continue;
      if (entry >= 0) {
        device_.DecRef(entry);
      } else {
        host_.DecRef(HostBlockOf(entry));
      }
    }
  }
  seqs_.erase(it);
}

absl::Status KVCacheManager::Fork(SeqHandle parent, SeqHandle child) {
  auto it = seqs_.find(parent);
  if (it == seqs_.end()) return absl::NotFoundError(absl::StrCat("no sequence ", parent));
  if (seqs_.contains(child)) {
    return absl::AlreadyExistsError(absl::StrCat("sequence ", child, " is already live"));
  }
  const SeqState& from = it->second;
  if (from.swapped_out) {
    return absl::FailedPreconditionError(absl::StrCat("sequence ", parent, " is swapped out"));
  }
  if (from.touched_round == round_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sequence ", parent, " was allocated in the plan being built; fork it before"));
  }
  SeqState state;
  state.tables.resize(windows_.size());
  // Blocks past NumTokens hold nothing yet (lookahead): the child gets its own when it writes.
  const int64_t num_shared = BlocksFor(from.num_tokens);
  for (size_t g = 0; g < windows_.size(); ++g) {
    const Table& parent_table = from.tables[g];
    Table& table = state.tables[g];
    table.blocks.assign(parent_table.blocks.begin(), parent_table.blocks.begin() + num_shared);
    table.num_freed_blocks = std::min(parent_table.num_freed_blocks, table.blocks.size());
    for (size_t i = table.num_freed_blocks; i < table.blocks.size(); ++i) {
      device_.IncRef(table.blocks[i]);
    }
  }
  state.block_hashes = from.block_hashes;
  state.num_tokens = from.num_tokens;
  state.extra_key = from.extra_key;
  seqs_.emplace(child, std::move(state));
  return absl::OkStatus();
}

std::vector<int32_t> KVCacheManager::TakeNewBlockIds(SeqHandle seq, int group) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end() || it->second.swapped_out) return {};
  Table& table = it->second.tables[group];
  std::vector<int32_t> ids(table.blocks.begin() + table.num_sent_blocks, table.blocks.end());
  table.num_sent_blocks = table.blocks.size();
  return ids;
}

std::vector<BlockPair> KVCacheManager::TakeReplacedBlockIds(SeqHandle seq, int group) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  return std::exchange(it->second.tables[group].replaced, {});
}

std::vector<BlockPair> KVCacheManager::TakeBlockCopies() {
  std::vector<BlockPair> copies = std::exchange(copies_, {});
  for (int32_t block : pinned_device_) {
    --pins_[block];
    device_.DecRef(block);
  }
  pinned_device_.clear();
  for (int32_t block : pinned_host_) host_.DecRef(block);
  pinned_host_.clear();
  ++round_;
  return copies;
}

void KVCacheManager::Pin(int32_t block) {
  device_.IncRef(block);
  ++pins_[block];
  pinned_device_.push_back(block);
}

absl::StatusOr<std::vector<BlockPair>> KVCacheManager::SwapOut(SeqHandle seq) {
  if (host_.num_blocks() == 0) return absl::FailedPreconditionError("no host swap space");
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return absl::NotFoundError(absl::StrCat("no sequence ", seq));
  SeqState& state = it->second;
  if (state.swapped_out) {
    return absl::FailedPreconditionError(absl::StrCat("sequence ", seq, " is swapped out"));
  }
  if (state.touched_round == round_) {
    return absl::FailedPreconditionError(
        absl::StrCat("sequence ", seq, " was allocated in the plan being built"));
  }
  const size_t num_blocks = state.tables[0].blocks.size();
  const size_t num_groups = state.tables.size();
  std::vector<bool> exclusive(num_blocks * num_groups);  // [block index][group]
  int32_t num_exclusive = 0;
  for (size_t g = 0; g < num_groups; ++g) {
    const Table& table = state.tables[g];
    for (size_t i = table.num_freed_blocks; i < num_blocks; ++i) {
      exclusive[i * num_groups + g] = !Shared(table.blocks[i]);
      num_exclusive += exclusive[i * num_groups + g] ? 1 : 0;
    }
  }
  std::vector<int32_t> host_blocks;
  if (!host_.Allocate(num_exclusive, &host_blocks)) {
    return absl::ResourceExhaustedError(absl::StrCat("swapping out sequence ", seq, " needs ",
                                                     num_exclusive, " host blocks, ",
                                                     host_.NumFreeBlocks(), " are free"));
  }
  std::vector<BlockPair> pairs;
  pairs.reserve(num_exclusive);
  size_t next_host = host_blocks.size();
  for (size_t k = exclusive.size(); k-- > 0;) {  // tail first into the LRU
    if (!exclusive[k]) continue;
    int32_t& entry = state.tables[k % num_groups].blocks[k / num_groups];
    const int32_t device_block = entry;
    const int32_t host_block = host_blocks[--next_host];
    pairs.emplace_back(device_block, host_block);
    entry = HostEntry(host_block);
    device_.DecRef(device_block);  // a cached block keeps its content for prefix hits
  }
  std::reverse(pairs.begin(), pairs.end());
  state.swapped_out = true;
  for (Table& table : state.tables) {
    table.num_sent_blocks = 0;
    table.replaced.clear();
  }
  return pairs;
}

int64_t KVCacheManager::SwapInCost(const SeqState& state) const {
  int64_t cost = 0;
  for (int g = 0; g < num_groups(); ++g) {
    const Table& table = state.tables[g];
    for (size_t i = table.num_freed_blocks; i < table.blocks.size(); ++i) {
      if (table.blocks[i] >= 0) continue;
      const int32_t cached =
          i < state.block_hashes.size() ? LookupGroup(state.block_hashes[i], g) : -1;
      if (cached < 0 || device_.RefCount(cached) == 0) ++cost;
    }
  }
  return cost;
}

bool KVCacheManager::CanSwapIn(SeqHandle seq) const {
  auto it = seqs_.find(seq);
  return it != seqs_.end() && it->second.swapped_out && SwapInCost(it->second) <= NumFreeBlocks();
}

absl::StatusOr<std::vector<BlockPair>> KVCacheManager::SwapIn(SeqHandle seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return absl::NotFoundError(absl::StrCat("no sequence ", seq));
  SeqState& state = it->second;
  if (!state.swapped_out) {
    return absl::FailedPreconditionError(absl::StrCat("sequence ", seq, " is not swapped out"));
  }
  const int64_t cost = SwapInCost(state);
  if (cost > NumFreeBlocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("swapping in sequence ", seq, " needs ", cost,
                                                     " device blocks, ", NumFreeBlocks(),
                                                     " are free"));
  }
  // Take the blocks still in the prefix cache first, so the allocation cannot evict them.
  std::vector<std::pair<int, size_t>> to_transfer;  // (group, index)
  for (size_t i = 0; i < state.tables[0].blocks.size(); ++i) {
    for (int g = 0; g < num_groups(); ++g) {
      Table& table = state.tables[g];
      if (i < table.num_freed_blocks || table.blocks[i] >= 0) continue;
      const int32_t cached =
          i < state.block_hashes.size() ? LookupGroup(state.block_hashes[i], g) : -1;
      if (cached < 0) {
        to_transfer.emplace_back(g, i);
        continue;
      }
      device_.IncRef(cached);
      host_.DecRef(HostBlockOf(table.blocks[i]));  // no transfer reads it
      table.blocks[i] = cached;
    }
  }
  std::vector<int32_t> fresh;
  PAGODA_CHECK(device_.Allocate(static_cast<int32_t>(to_transfer.size()), &fresh))
      << "free blocks miscounted";
  std::vector<BlockPair> pairs;
  pairs.reserve(to_transfer.size());
  for (size_t k = 0; k < to_transfer.size(); ++k) {
    const auto [g, i] = to_transfer[k];
    int32_t& entry = state.tables[g].blocks[i];
    const int32_t host_block = HostBlockOf(entry);
    pairs.emplace_back(host_block, fresh[k]);
    pinned_host_.push_back(host_block);  // freed at TakeBlockCopies, after the plan reads it
    entry = fresh[k];
    if (i < state.block_hashes.size()) {
      device_.CacheBlock(fresh[k], GroupBlockHash(state.block_hashes[i], g));
    }
  }
  state.swapped_out = false;
  for (Table& table : state.tables) table.num_sent_blocks = 0;
  state.touched_round = round_;
  state.write_begin = state.write_end = state.num_tokens;
  return pairs;
}

bool KVCacheManager::IsSwappedOut(SeqHandle seq) const {
  auto it = seqs_.find(seq);
  return it != seqs_.end() && it->second.swapped_out;
}

int64_t KVCacheManager::NumTokens(SeqHandle seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.num_tokens;
}

absl::Span<const int32_t> KVCacheManager::BlockTable(SeqHandle seq, int group) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  return it->second.tables[group].blocks;
}

absl::Status KVCacheManager::CheckInvariants() const {
  RETURN_IF_ERROR(device_.CheckInvariants());
  RETURN_IF_ERROR(host_.CheckInvariants());
  const int32_t num_device = device_.num_blocks();
  const int32_t num_host = host_.num_blocks();
  std::vector<int32_t> device_refs(num_device, 0);
  std::vector<int32_t> host_refs(num_host, 0);
  std::vector<SeqHandle> writer(num_device, -1);
  std::vector<bool> has_writer(num_device, false);
  std::vector<int> device_group(num_device, -1);  // the group whose tables name the block
  std::vector<int> host_group(num_host, -1);
  auto claim = [](std::vector<int>& group_of, int32_t block, int group) {
    if (group_of[block] >= 0 && group_of[block] != group) return false;
    group_of[block] = group;
    return true;
  };
  for (const auto& [seq, state] : seqs_) {
    const std::string name = absl::StrCat("sequence ", seq, ": ");
    if (state.tables.size() != windows_.size()) {
      return absl::InternalError(
          absl::StrCat(name, state.tables.size(), " tables for ", windows_.size(), " groups"));
    }
    const size_t num_blocks = state.tables[0].blocks.size();
    if (static_cast<int64_t>(num_blocks) < BlocksFor(state.num_tokens)) {
      return absl::InternalError(
          absl::StrCat(name, num_blocks, " blocks cannot hold ", state.num_tokens, " tokens"));
    }
    if (static_cast<int64_t>(state.block_hashes.size()) > state.num_tokens / block_size_) {
      return absl::InternalError(absl::StrCat(name, "hashes past its full blocks"));
    }
    for (int g = 0; g < num_groups(); ++g) {
      const Table& table = state.tables[g];
      const std::string where = absl::StrCat(name, "group ", g, ": ");
      if (table.blocks.size() != num_blocks) {
        return absl::InternalError(
            absl::StrCat(where, table.blocks.size(), " entries, group 0 has ", num_blocks));
      }
      if (table.num_sent_blocks > num_blocks || table.num_freed_blocks > num_blocks) {
        return absl::InternalError(absl::StrCat(where, "sent or freed more blocks than it holds"));
      }
      const int64_t window = windows_[g];
      if ((window == 0 && table.num_freed_blocks > 0) ||
          (window > 0 && table.num_freed_blocks > 0 &&
           static_cast<int64_t>(table.num_freed_blocks) * block_size_ >
               state.num_tokens - window + 1)) {
        return absl::InternalError(absl::StrCat(where, "freed block ", table.num_freed_blocks - 1,
                                                " which its window still sees"));
      }
      for (size_t i = 0; i < num_blocks; ++i) {
        const int32_t entry = table.blocks[i];
        if ((entry == kFreedBlockId) != (i < table.num_freed_blocks)) {
          return absl::InternalError(absl::StrCat(where, "entry ", i, " is ", entry, " with ",
                                                  table.num_freed_blocks, " leading blocks freed"));
        }
        if (entry == kFreedBlockId) continue;
        if (entry >= 0) {
          if (entry >= num_device) return absl::InternalError(absl::StrCat(where, "bad block"));
          ++device_refs[entry];
          if (!claim(device_group, entry, g)) {
            return absl::InternalError(
                absl::StrCat(where, "block ", entry, " is also in group ", device_group[entry]));
          }
          const BlockHash* hash = device_.HashOf(entry);
          if (hash != nullptr && i < state.block_hashes.size() &&
              !(*hash == GroupBlockHash(state.block_hashes[i], g))) {
            return absl::InternalError(absl::StrCat(where, "block ", entry,
                                                    " is cached as other "
                                                    "tokens than the sequence holds"));
          }
        } else {
          const int32_t host_block = HostBlockOf(entry);
          if (!state.swapped_out || host_block >= num_host) {
            return absl::InternalError(absl::StrCat(where, "bad host entry ", entry));
          }
          ++host_refs[host_block];
          if (!claim(host_group, host_block, g)) {
            return absl::InternalError(absl::StrCat(where, "host block ", host_block,
                                                    " is also in group ", host_group[host_block]));
          }
        }
      }
      if (state.swapped_out || state.touched_round != round_) continue;
      for (int64_t i = state.write_begin / block_size_; i < WriteEndBlock(state); ++i) {
        const int32_t block = table.blocks[i];
        if (has_writer[block]) {
          return absl::InternalError(absl::StrCat("block ", block, " is written by sequences ",
                                                  writer[block], " and ", seq, " in one plan"));
        }
        has_writer[block] = true;
        writer[block] = seq;
        // Readers that hit a block this plan fills are fine; sharers of a partial block are not.
        if (Shared(block) && device_.HashOf(block) == nullptr) {
          return absl::InternalError(absl::StrCat(where, "writes block ", block,
                                                  " which it shares (missed copy-on-write)"));
        }
      }
    }
  }
  std::vector<int32_t> pins(num_device, 0);
  for (int32_t block : pinned_device_) {
    ++device_refs[block];
    ++pins[block];
  }
  for (int32_t block : pinned_host_) ++host_refs[block];
  for (int32_t b = 0; b < num_device; ++b) {
    if (pins[b] != pins_[b]) return absl::InternalError(absl::StrCat("pins of ", b, " disagree"));
    if (device_refs[b] != device_.RefCount(b)) {
      return absl::InternalError(absl::StrCat("device block ", b, " has ref count ",
                                              device_.RefCount(b), " but ", device_refs[b],
                                              " table entries and pins"));
    }
  }
  for (int32_t b = 0; b < num_host; ++b) {
    if (host_refs[b] != host_.RefCount(b)) {
      return absl::InternalError(absl::StrCat("host block ", b, " has ref count ",
                                              host_.RefCount(b), " but ", host_refs[b],
                                              " table entries and pins"));
    }
  }
  for (const auto& [src, dst] : copies_) {
    if (pins_[src] == 0 || pins_[dst] == 0) {
      return absl::InternalError(absl::StrCat("copy ", src, " -> ", dst, " is not pinned"));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda
