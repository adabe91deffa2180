#include "worker/grpc_rendezvous_store.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "proto/grpc_status.h"
#include "proto/grpc_tls.h"

namespace pagoda {
namespace {

constexpr absl::Duration kRetryInterval = absl::Milliseconds(100);

std::chrono::system_clock::time_point Deadline(absl::Duration from_now) {
  return absl::ToChronoTime(absl::Now() + from_now);
}

}  // namespace

GrpcRendezvousStore::GrpcRendezvousStore(const std::string& rank0_address,
                                         absl::Duration connect_timeout, const TlsPem& tls)
    : address_(rank0_address), connect_timeout_(connect_timeout) {
  grpc::ChannelArguments args;
  std::shared_ptr<grpc::ChannelCredentials> credentials = ChannelCredentials(tls, args);
  stub_ = internal::Worker::NewStub(grpc::CreateCustomChannel(rank0_address, credentials, args));
}

absl::Status GrpcRendezvousStore::Set(const std::string& key, const std::string& value) {
  internal::StoreSetRequest request;
  request.set_key(key);
  request.set_value(value);
  const absl::Time give_up = absl::Now() + connect_timeout_;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(connect_timeout_));
    context.set_wait_for_ready(true);  // rank 0 may not be listening yet
    internal::StoreSetResponse response;
    const grpc::Status status = stub_->StoreSet(&context, request, &response);
    if (status.ok()) return absl::OkStatus();
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() >= give_up) {
      return absl::UnavailableError(absl::StrCat("rendezvous with rank 0 at ", address_,
                                                 " failed setting '", key,
                                                 "': ", status.error_message()));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRetryInterval));
  }
}

absl::StatusOr<std::string> GrpcRendezvousStore::Get(const std::string& key,
                                                     absl::Duration timeout) {
  internal::StoreGetRequest request;
  request.set_key(key);
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  const absl::Time give_up = absl::Now() + timeout + connect_timeout_;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(timeout + connect_timeout_));
    context.set_wait_for_ready(true);
    internal::StoreGetResponse response;
    const grpc::Status status = stub_->StoreGet(&context, request, &response);
    if (status.ok()) return std::move(*response.mutable_value());
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() >= give_up) {
      absl::Status error = FromGrpcStatus(status);
      return absl::Status(error.code(),
                          absl::StrCat("rendezvous with rank 0 at ", address_, " failed getting '",
                                       key, "': ", error.message()));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRetryInterval));
  }
}

}  // namespace pagoda
