// GenerationService: the public pagoda.v1 Generation gRPC service — a thin adapter from the
// proto messages to the Frontend (validation, admission) and from RequestSession deltas back to
// messages. A cancelled call (client cancel or deadline) aborts the request on its replica.
//
//   GenerationService service(&frontend);
//   builder.RegisterService(&service);
#pragma once

#include <string>
#include <string_view>

#include "engine/output_processor.h"
#include "pagoda/v1/generation.grpc.pb.h"
#include "router/frontend/frontend.h"

namespace pagoda {

/// Writes a delta (or an accumulated result) as the public message.
void ToProto(const RequestOutput& output, v1::GenerateResponse* response);

class ApiKeys;  // router/frontend/api_keys.h

class GenerationService final : public v1::Generation::Service {
 public:
  /// `frontend` must outlive the service. `version`: reported by GetServerInfo.
  /// `api_keys` (null: open) must outlive the service too: every method then needs the
  /// `authorization` metadata "Bearer <key>" (UNAUTHENTICATED otherwise).
  GenerationService(Frontend* frontend, std::string version, std::string routing_policy,
                    int64_t max_queued_requests, const ApiKeys* api_keys = nullptr);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Complete(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::CompleteResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status GetServerInfo(grpc::ServerContext* context, const v1::GetServerInfoRequest* request,
                             v1::GetServerInfoResponse* response) override;

 private:
  // The methods, counted by method and status code in RouterMetrics by the overrides above.
  grpc::Status DoGenerate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                          grpc::ServerWriter<v1::GenerateResponse>* writer);
  grpc::Status DoComplete(grpc::ServerContext* context, const v1::GenerateRequest* request,
                          v1::CompleteResponse* response);
  grpc::Status DoTokenize(const v1::TokenizeRequest* request, v1::TokenizeResponse* response);
  grpc::Status DoDetokenize(const v1::DetokenizeRequest* request, v1::DetokenizeResponse* response);
  grpc::Status DoListModels(v1::ListModelsResponse* response);
  grpc::Status DoGetServerInfo(v1::GetServerInfoResponse* response);
  // Counts a finished call and returns its status.
  grpc::Status Counted(std::string_view method, grpc::Status status);
  // OK, or UNAUTHENTICATED when keys are set and the call's metadata has none of them.
  grpc::Status Authenticate(const grpc::ServerContext* context) const;

  // Parses and admits a request; the gRPC status of an error.
  grpc::Status Start(const v1::GenerateRequest& request, std::unique_ptr<RequestSession>* session);

  Frontend* const frontend_;
  const std::string version_;
  const std::string routing_policy_;
  const int64_t max_queued_requests_;
  const ApiKeys* const api_keys_;
};

}  // namespace pagoda
