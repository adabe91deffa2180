// Conversions between absl::Status (the code's errors) and grpc::Status (the wire's), keeping
// the canonical code and the message; both use the same numeric codes.
//
//   return ToGrpcStatus(service_core.Apply(plan));                  // in a service method
//   absl::Status status = FromGrpcStatus(stub->Execute(&ctx, r, &out));  // in a client
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace pagoda {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace pagoda
