#include "worker/rendezvous_store.h"

#include "absl/strings/str_cat.h"

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

}  // namespace pagoda
