#include "worker/rendezvous_store.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pagoda {

absl::Status InMemoryRendezvousStore::Set(const std::string& key, const std::string& value) {
  absl::MutexLock lock(&mu_);
  values_[key] = value;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryRendezvousStore::Get(const std::string& key,
                                                         absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto is_set = [this, &key]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return values_.contains(key); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&is_set), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "rendezvous key '", key, "' was not set within ", absl::FormatDuration(timeout)));
  }
  return values_.at(key);
}

void InMemoryRendezvousStore::ForgetGenerationsBefore(const std::string& replica,
                                                      uint64_t generation) {
  const std::string prefix = absl::StrCat(replica, "/g");
  absl::MutexLock lock(&mu_);
  absl::erase_if(values_, [&](const auto& entry) {
    absl::string_view key = entry.first;
    if (!absl::ConsumePrefix(&key, prefix)) return false;
    uint64_t key_generation = 0;
    const size_t end = key.find('/');
    return end != absl::string_view::npos &&
           absl::SimpleAtoi(key.substr(0, end), &key_generation) && key_generation < generation;
  });
}

size_t InMemoryRendezvousStore::size() const {
  absl::MutexLock lock(&mu_);
  return values_.size();
}

}  // namespace pagoda
