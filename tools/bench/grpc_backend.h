// GrpcBackend: `pagoda bench serve --target grpc://...` — each request is one streaming
// pagoda.v1 Generation/Generate call over a shared channel (HTTP/2 multiplexes the streams).
// Prompts go as token ids when the dataset has them (exact lengths), else as text; a response
// counts as an output chunk when it carries token ids; usage comes from the final message.
//
//   GrpcBackend backend("127.0.0.1:50051");
//   RequestRecord record = backend.Send(request, {.model = "stories260K", .ignore_eos = true});
#pragma once

#include <memory>
#include <string>

#include "pagoda/v1/generation.grpc.pb.h"
#include "tools/bench/serving_backend.h"

namespace pagoda {

class GrpcBackend final : public ServingBackend {
 public:
  /// `address`: "HOST:PORT". Connects lazily.
  explicit GrpcBackend(const std::string& address);

  absl::StatusOr<ServedModel> GetServedModel() override;
  RequestRecord Send(const BenchRequest& request, const RequestParams& params) override;

 private:
  std::string address_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

}  // namespace pagoda
