#include "router/frontend/api_keys.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

constexpr size_t kMaxKeyBytes = 256;
constexpr std::string_view kBearer = "Bearer ";

absl::Status CheckKey(std::string_view key, std::string_view where) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(where), ": an API key must be 1 to ", kMaxKeyBytes, " bytes"));
  }
  for (const char c : key) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(where),
                       ": an API key may hold only printable ASCII characters without spaces"));
    }
  }
  return absl::OkStatus();
}

// Time depends only on the lengths' maximum, never on where the bytes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() ^ b.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<std::vector<std::string>> ReadKeys(const std::string& key, const std::string& file) {
  std::vector<std::string> keys;
  if (!key.empty()) {
    RETURN_IF_ERROR(CheckKey(key, "--api-key"));
    keys.push_back(key);
  }
  if (file.empty()) return keys;
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(file));
  int line_number = 0;
  size_t from_file = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    ++line_number;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (line.empty() || line.front() == '#') continue;
    RETURN_IF_ERROR(CheckKey(line, absl::StrCat(file, ":", line_number)));
    keys.emplace_back(line);
    ++from_file;
  }
  if (from_file == 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": holds no API key"));
  }
  return keys;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiKeys>> ApiKeys::Create(std::string key, std::string file) {
  std::unique_ptr<ApiKeys> keys(new ApiKeys(std::move(key), std::move(file)));
  ASSIGN_OR_RETURN(std::vector<std::string> loaded, ReadKeys(keys->key_, keys->file_));
  absl::MutexLock lock(&keys->mu_);
  keys->keys_ = std::make_shared<const std::vector<std::string>>(std::move(loaded));
  return keys;
}

absl::Status ApiKeys::Reload() {
  if (file_.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> loaded, ReadKeys(key_, file_));
  absl::MutexLock lock(&mu_);
  keys_ = std::make_shared<const std::vector<std::string>>(std::move(loaded));
  return absl::OkStatus();
}

bool ApiKeys::enabled() const { return num_keys() > 0; }

size_t ApiKeys::num_keys() const {
  absl::MutexLock lock(&mu_);
  return keys_->size();
}

bool ApiKeys::Authorizes(std::string_view authorization) const {
  std::shared_ptr<const std::vector<std::string>> keys;
  {
    absl::MutexLock lock(&mu_);
    keys = keys_;
  }
  if (keys->empty()) return true;
  if (authorization.substr(0, kBearer.size()) != kBearer) return false;
  authorization.remove_prefix(kBearer.size());
  bool match = false;
  for (const std::string& key : *keys) match |= ConstantTimeEquals(authorization, key);
  return match;
}

}  // namespace pagoda
