// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
//
// The packaged abseil (20220623) predates its own status macros, so Pagoda carries these.
//
//   absl::StatusOr<Config> Load(const std::string& path) {
//     RETURN_IF_ERROR(CheckReadable(path));
//     ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     return Parse(text);
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PAGODA_STATUS_CONCAT_INNER(a, b) a##b
#define PAGODA_STATUS_CONCAT(a, b) PAGODA_STATUS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status pagoda_status_ = (expr);          \
    if (!pagoda_status_.ok()) return pagoda_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  PAGODA_ASSIGN_OR_RETURN_IMPL(PAGODA_STATUS_CONCAT(pagoda_statusor_, __LINE__), lhs, expr)

#define PAGODA_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
