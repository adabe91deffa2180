// The API keys clients must present: `Authorization: Bearer <key>` on HTTP, the `authorization`
// metadata `Bearer <key>` on gRPC. Keys come from --api-key / $PAGODA_API_KEY and from
// --api-key-file (one key per line; blank lines and lines starting with '#' are skipped), so a
// key can be rotated without a restart: write the new file, send SIGHUP (Reload). A presented
// key is compared with every key in constant time (no early exit on the first differing byte,
// none on a match), so response times say nothing about the keys.
//
//   ASSIGN_OR_RETURN(auto keys, ApiKeys::Create(flag_key, "/etc/pagoda/keys"));
//   if (keys->enabled() && !keys->Authorizes(req.get_header_value("Authorization"))) ... 401
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace pagoda {

class ApiKeys {
 public:
  /// `key` (may be empty) plus the keys of `file` (empty: none). InvalidArgument for a key that
  /// is empty, longer than 256 bytes or holds anything but printable ASCII without spaces, and for
  /// a file without keys; NotFound for a file that cannot be read.
  static absl::StatusOr<std::unique_ptr<ApiKeys>> Create(std::string key, std::string file);

  /// Re-reads the file (a no-op without one). On an error the keys stay as they were.
  absl::Status Reload();

  /// False when no key is configured: everything is open.
  bool enabled() const;
  /// Whether `authorization` is "Bearer <k>" for a configured key k (always true when disabled).
  bool Authorizes(std::string_view authorization) const;
  size_t num_keys() const;

 private:
  ApiKeys(std::string key, std::string file) : key_(std::move(key)), file_(std::move(file)) {}

  const std::string key_;
  const std::string file_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<std::string>> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
