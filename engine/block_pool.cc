#include "engine/block_pool.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace pagoda {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;  // the xxHash64 primes
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kSeedA = 0x243F6A8885A308D3ULL;  // digits of pi
constexpr uint64_t kSeedB = 0x13198A2E03707344ULL;

uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// The murmur3 64-bit finalizer: a bijection with full avalanche.
uint64_t Avalanche(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDULL;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ULL;
  x ^= x >> 33;
  return x;
}

// Two lanes absorbing the same words with different constants.
struct Lanes {
  uint64_t a = kSeedA;
  uint64_t b = kSeedB;

  void Absorb(uint64_t word) {
    a = Rotl(a + word * kPrime2, 31) * kPrime1;
    b = Rotl(b + word * kPrime4, 27) * kPrime3;
  }
};

}  // namespace

BlockHash HashBlockTokens(const BlockHash& parent, absl::Span<const int32_t> token_ids,
                          uint64_t extra_key) {
  Lanes lanes;
  lanes.Absorb(parent.hi);
  lanes.Absorb(parent.lo);
  lanes.Absorb(extra_key);
  lanes.Absorb(token_ids.size());
  size_t i = 0;
  for (; i + 1 < token_ids.size(); i += 2) {
    lanes.Absorb(static_cast<uint64_t>(static_cast<uint32_t>(token_ids[i])) |
                 (static_cast<uint64_t>(static_cast<uint32_t>(token_ids[i + 1])) << 32));
  }
  if (i < token_ids.size()) lanes.Absorb(static_cast<uint32_t>(token_ids[i]));
  return BlockHash{.hi = Avalanche(lanes.a), .lo = Avalanche(lanes.b ^ kPrime1)};
}

uint64_t ExtraKeyFromString(std::string_view text) {
  Lanes lanes;
  lanes.Absorb(text.size());
  uint64_t word = 0;
  int filled = 0;
  for (unsigned char c : text) {
    word |= static_cast<uint64_t>(c) << (8 * filled);
    if (++filled == 8) {
      lanes.Absorb(word);
      word = 0;
      filled = 0;
    }
  }
  if (filled > 0) lanes.Absorb(word);
  // Mix both lanes so the 64-bit key draws on both; 0 (no key) is practically never produced.
  return Avalanche(lanes.a) ^ Rotl(Avalanche(lanes.b), 17);
}

BlockPool::BlockPool(int32_t num_blocks, bool enable_caching)
    : num_blocks_(num_blocks),
      enable_caching_(enable_caching),
      ref_count_(num_blocks, 0),
      prev_(num_blocks + 1),
      next_(num_blocks + 1),
      hash_(num_blocks),
      has_hash_(num_blocks, false) {
  PAGODA_CHECK(num_blocks >= 0) << "BlockPool of " << num_blocks << " blocks";
  prev_[num_blocks_] = next_[num_blocks_] = num_blocks_;
  for (int32_t b = 0; b < num_blocks_; ++b) PushBack(b);
}

double BlockPool::Usage() const {
  if (num_blocks_ == 0) return 0.0;
  return 1.0 - static_cast<double>(num_free_) / num_blocks_;
}

size_t BlockPool::Index(int32_t block) const {
  PAGODA_CHECK(block >= 0 && block < num_blocks_)
      << "block " << block << " is outside the pool's [0, " << num_blocks_ << ")";
  return static_cast<size_t>(block);
}

void BlockPool::PushFront(int32_t block) {
  const int32_t sentinel = num_blocks_;
  const int32_t first = next_[sentinel];
  prev_[block] = sentinel;
  next_[block] = first;
  prev_[first] = block;
  next_[sentinel] = block;
  ++num_free_;
}

void BlockPool::PushBack(int32_t block) {
  const int32_t sentinel = num_blocks_;
  const int32_t last = prev_[sentinel];
  next_[block] = sentinel;
  prev_[block] = last;
  next_[last] = block;
  prev_[sentinel] = block;
  ++num_free_;
}

void BlockPool::Unlink(int32_t block) {
  next_[prev_[block]] = next_[block];
  prev_[next_[block]] = prev_[block];
  prev_[block] = next_[block] = -1;
  --num_free_;
}

bool BlockPool::Allocate(int32_t n, std::vector<int32_t>* out) {
  PAGODA_CHECK(n >= 0) << "allocating " << n << " blocks";
  if (n > num_free_) return false;
  out->reserve(out->size() + n);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t block = next_[num_blocks_];
    Unlink(block);
    if (has_hash_[block]) EraseHash(block);  // evict
    ref_count_[block] = 1;
    out->push_back(block);
  }
  return true;
}

void BlockPool::IncRef(int32_t block) {
  const size_t i = Index(block);
  if (ref_count_[i] == 0) Unlink(block);
  ++ref_count_[i];
}

void BlockPool::DecRef(int32_t block) {
  const size_t i = Index(block);
  PAGODA_CHECK(ref_count_[i] > 0) << "block " << block << " released more often than referenced";
  if (--ref_count_[i] > 0) return;
  if (has_hash_[i]) {
    PushBack(block);
  } else {
    PushFront(block);
  }
}

int32_t BlockPool::Lookup(const BlockHash& hash) const {
  auto it = cached_.find(hash);
  return it == cached_.end() ? -1 : it->second;
}

bool BlockPool::CacheBlock(int32_t block, const BlockHash& hash) {
  const size_t i = Index(block);
  PAGODA_CHECK(ref_count_[i] > 0) << "caching block " << block << ", which nobody references";
  if (!enable_caching_ || has_hash_[i]) return false;
  if (!cached_.emplace(hash, block).second) return false;
  hash_[i] = hash;
  has_hash_[i] = true;
  return true;
}

void BlockPool::EraseHash(int32_t block) {
  cached_.erase(hash_[block]);
  has_hash_[block] = false;
  hash_[block] = BlockHash{};
}

void BlockPool::UncacheBlock(int32_t block) {
  const size_t i = Index(block);
  if (!has_hash_[i]) return;
  EraseHash(block);
  // A free block without a hash is worth nothing: move it to the head so it is reused first.
  if (ref_count_[i] == 0) {
    Unlink(block);
    PushFront(block);
  }
}

const BlockHash* BlockPool::HashOf(int32_t block) const {
  const size_t i = Index(block);
  return has_hash_[i] ? &hash_[i] : nullptr;
}

std::vector<int32_t> BlockPool::FreeListForTesting() const {
  std::vector<int32_t> blocks;
  for (int32_t b = next_[num_blocks_]; b != num_blocks_; b = next_[b]) blocks.push_back(b);
  return blocks;
}

absl::Status BlockPool::CheckInvariants() const {
  const int32_t sentinel = num_blocks_;
  std::vector<bool> on_list(num_blocks_, false);
  int32_t count = 0;
  for (int32_t b = next_[sentinel]; b != sentinel; b = next_[b]) {
    if (b < 0 || b >= num_blocks_) return absl::InternalError(absl::StrCat("free list names ", b));
    if (on_list[b]) return absl::InternalError(absl::StrCat("block ", b, " is free twice"));
    if (ref_count_[b] != 0) {
      return absl::InternalError(
          absl::StrCat("block ", b, " is free and referenced (", ref_count_[b], ")"));
    }
    if (next_[prev_[b]] != b) return absl::InternalError(absl::StrCat("bad links at ", b));
    on_list[b] = true;
    if (++count > num_blocks_) return absl::InternalError("free list has a cycle");
  }
  if (count != num_free_) {
    return absl::InternalError(
        absl::StrCat("free list holds ", count, " blocks, free count says ", num_free_));
  }
  for (int32_t b = 0; b < num_blocks_; ++b) {
    if (ref_count_[b] < 0) return absl::InternalError(absl::StrCat("block ", b, " ref < 0"));
    if (ref_count_[b] == 0 && !on_list[b]) {
      return absl::InternalError(absl::StrCat("block ", b, " is unreferenced and leaked"));
    }
    if (has_hash_[b]) {
      auto it = cached_.find(hash_[b]);
      if (it == cached_.end() || it->second != b) {
        return absl::InternalError(absl::StrCat("block ", b, "'s hash is not mapped to it"));
      }
    }
  }
  for (const auto& [hash, block] : cached_) {
    if (block < 0 || block >= num_blocks_ || !has_hash_[block] || !(hash_[block] == hash)) {
      return absl::InternalError(absl::StrCat("cache entry names block ", block, " wrongly"));
    }
  }
  if (!enable_caching_ && !cached_.empty()) return absl::InternalError("cached with caching off");
  return absl::OkStatus();
}

}  // namespace pagoda
