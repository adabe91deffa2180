#include "tools/bench/grpc_backend.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "proto/grpc_status.h"

namespace pagoda {
namespace {

constexpr absl::Duration kListModelsTimeout = absl::Seconds(30);

std::string FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_ABORT:
      return "abort";
    default:
      return "";
  }
}

std::string Describe(const grpc::Status& status) {
  return FromGrpcStatus(status).ToString();  // "UNAVAILABLE: ..."
}

}  // namespace

GrpcBackend::GrpcBackend(const std::string& address)
    : address_(address),
      stub_(v1::Generation::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

absl::StatusOr<ServedModel> GrpcBackend::GetServedModel() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kListModelsTimeout));
  v1::ListModelsResponse response;
  const grpc::Status status = stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("ListModels at ", address_, " failed: ", Describe(status)));
  }
  if (response.models().empty()) {
    return absl::UnavailableError(absl::StrCat(address_, " serves no model"));
  }
  return ServedModel{.id = response.models(0).id(),
                     .max_model_len = response.models(0).max_model_len()};
}

RequestRecord GrpcBackend::Send(const BenchRequest& request, const RequestParams& params) {
  v1::GenerateRequest message;
  message.set_model(params.model);
  if (!request.prompt_token_ids.empty()) {
    message.mutable_token_ids()->mutable_ids()->Add(request.prompt_token_ids.begin(),
                                                    request.prompt_token_ids.end());
  } else {
    message.set_text(request.prompt);
  }
  v1::SamplingParams& sampling = *message.mutable_sampling();
  sampling.set_temperature(static_cast<float>(params.temperature));
  sampling.set_max_tokens(static_cast<int32_t>(request.output_len));
  const bool constrained = !request.json_schema.empty();
  sampling.set_ignore_eos(params.ignore_eos && !constrained);
  if (constrained) {
    sampling.mutable_structured_output()->set_kind(v1::StructuredOutput::KIND_JSON_SCHEMA);
    sampling.mutable_structured_output()->set_text(request.json_schema);
  }

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + params.timeout));
  RequestRecord record;
  record.constrained = constrained;
  ChunkTimer timer;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub_->Generate(&context, message);
  v1::GenerateResponse response;
  bool finished = false;
  while (reader->Read(&response)) {
    const bool has_tokens =
        std::any_of(response.outputs().begin(), response.outputs().end(),
                    [](const v1::Completion& c) { return c.token_ids_size() > 0; });
    if (has_tokens) timer.OnOutputChunk();
    for (const v1::Completion& completion : response.outputs()) {
      if (completion.index() != 0) continue;
      if (constrained) record.output_text += completion.text();
      if (completion.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        record.finish_reason = FinishReasonName(completion.finish_reason());
      }
    }
    if (response.finished()) {
      finished = true;
      record.prompt_tokens = response.usage().prompt_tokens();
      record.output_tokens = response.usage().completion_tokens();
    }
  }
  const grpc::Status status = reader->Finish();
  timer.Finish(record);
  if (!status.ok()) {
    record.error = Describe(status);
  } else if (!finished) {
    record.error = "the stream ended without its final message";
  } else {
    record.success = true;
  }
  return record;
}

}  // namespace pagoda
