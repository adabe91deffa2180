#include "router/frontend/generation_service.h"

#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "proto/grpc_status.h"
#include "proto/step_codec.h"
#include "router/frontend/api_keys.h"
#include "router/router_metrics.h"

namespace pagoda {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(50);

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAbort:
      return v1::FINISH_REASON_ABORT;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const CompletionOutput& out, v1::Completion* completion) {
  completion->set_index(out.index);
  completion->set_text(out.text);
  completion->mutable_token_ids()->Add(out.token_ids.begin(), out.token_ids.end());
  for (size_t i = 0; i < out.logprobs.size() && i < out.token_ids.size(); ++i) {
    v1::TokenLogprob* logprob = completion->add_logprobs();
    logprob->set_token_id(out.token_ids[i]);
    logprob->set_logprob(out.logprobs[i]);
    if (i < out.top_logprobs.size()) {
      for (const auto& [token_id, value] : out.top_logprobs[i]) {
        v1::TopLogprob* top = logprob->add_top();
        top->set_token_id(token_id);
        top->set_logprob(value);
      }
    }
  }
  if (out.cumulative_logprob.has_value())
    completion->set_cumulative_logprob(*out.cumulative_logprob);
  if (out.finish_reason.has_value()) completion->set_finish_reason(ToProto(*out.finish_reason));
  if (const auto* text = std::get_if<std::string>(&out.stop_reason)) {
    completion->set_stop_str(*text);
  } else if (const auto* id = std::get_if<int32_t>(&out.stop_reason)) {
    completion->set_stop_token_id(*id);
  }
}

void ToProto(const Usage& usage, v1::Usage* out) {
  out->set_prompt_tokens(usage.prompt_tokens);
  out->set_completion_tokens(usage.completion_tokens);
  out->set_total_tokens(usage.prompt_tokens + usage.completion_tokens);
}

grpc::Status ToGrpc(const absl::Status& status) {
  // An unknown model is a bad argument on this API (HTTP answers 404).
  if (absl::IsNotFound(status)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message()));
  }
  return ToGrpcStatus(status);
}

// Waits for the session's next delta while watching the call; nullopt once the client is gone.
std::optional<RequestOutput> NextOrCancelled(grpc::ServerContext* context,
                                             RequestSession& session) {
  while (true) {
    if (context->IsCancelled()) {
      session.Cancel();
      return std::nullopt;
    }
    std::optional<RequestOutput> delta = session.Next(kPollInterval);
    if (delta.has_value()) return delta;
  }
}

}  // namespace

void ToProto(const RequestOutput& output, v1::GenerateResponse* response) {
  response->set_request_id(output.request_id);
  for (const CompletionOutput& out : output.outputs) ToProto(out, response->add_outputs());
  response->set_finished(output.finished);
  if (output.usage.has_value()) ToProto(*output.usage, response->mutable_usage());
}

GenerationService::GenerationService(Frontend* frontend, std::string version,
                                     std::string routing_policy, int64_t max_queued_requests,
                                     const ApiKeys* api_keys)
    : frontend_(frontend),
      version_(std::move(version)),
      routing_policy_(std::move(routing_policy)),
      max_queued_requests_(max_queued_requests),
      api_keys_(api_keys) {}

grpc::Status GenerationService::Authenticate(const grpc::ServerContext* context) const {
  if (api_keys_ == nullptr || !api_keys_->enabled()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  const std::string_view presented = it == metadata.end()
                                         ? std::string_view()
                                         : std::string_view(it->second.data(), it->second.size());
  if (api_keys_->Authorizes(presented)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or wrong API key (metadata authorization: Bearer <key>)");
}

grpc::Status GenerationService::Start(const v1::GenerateRequest& request,
                                      std::unique_ptr<RequestSession>* session) {
  absl::StatusOr<SamplingParams> params = DecodeSamplingParams(request.sampling());
  if (!params.ok()) return ToGrpc(params.status());
  GenerationInput input{
      .request_id = request.request_id(),
      .model = request.model(),
      .add_special_tokens = !request.has_add_special_tokens() || request.add_special_tokens(),
      .params = std::move(*params),
      .priority = request.priority()};
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      input.text = request.text();
      break;
    case v1::GenerateRequest::kTokenIds:
      input.token_ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "prompt: set either text or token_ids");
  }
  absl::StatusOr<std::unique_ptr<RequestSession>> started = frontend_->Submit(std::move(input));
  if (!started.ok()) return ToGrpc(started.status());
  *session = std::move(*started);
  return grpc::Status::OK;
}

grpc::Status GenerationService::Counted(std::string_view method, grpc::Status status) {
  if (RouterMetrics* metrics = frontend_->replicas().metrics(); metrics != nullptr) {
    metrics->CountGrpcRequest(method, static_cast<int>(status.error_code()));
  }
  return status;
}

grpc::Status GenerationService::Generate(grpc::ServerContext* context,
                                         const v1::GenerateRequest* request,
                                         grpc::ServerWriter<v1::GenerateResponse>* writer) {
  grpc::Status allowed = Authenticate(context);
  return Counted("Generate", allowed.ok() ? DoGenerate(context, request, writer) : allowed);
}

grpc::Status GenerationService::Complete(grpc::ServerContext* context,
                                         const v1::GenerateRequest* request,
                                         v1::CompleteResponse* response) {
  grpc::Status allowed = Authenticate(context);
  return Counted("Complete", allowed.ok() ? DoComplete(context, request, response) : allowed);
}

grpc::Status GenerationService::Tokenize(grpc::ServerContext* context,
                                         const v1::TokenizeRequest* request,
                                         v1::TokenizeResponse* response) {
  grpc::Status allowed = Authenticate(context);
  return Counted("Tokenize", allowed.ok() ? DoTokenize(request, response) : allowed);
}

grpc::Status GenerationService::Detokenize(grpc::ServerContext* context,
                                           const v1::DetokenizeRequest* request,
                                           v1::DetokenizeResponse* response) {
  grpc::Status allowed = Authenticate(context);
  return Counted("Detokenize", allowed.ok() ? DoDetokenize(request, response) : allowed);
}

grpc::Status GenerationService::ListModels(grpc::ServerContext* context,
                                           const v1::ListModelsRequest*,
                                           v1::ListModelsResponse* response) {
  grpc::Status allowed = Authenticate(context);
  return Counted("ListModels", allowed.ok() ? DoListModels(response) : allowed);
}

grpc::Status GenerationService::GetServerInfo(grpc::ServerContext* context,
                                              const v1::GetServerInfoRequest*,
                                              v1::GetServerInfoResponse* response) {
  grpc::Status allowed = Authenticate(context);
  return Counted("GetServerInfo", allowed.ok() ? DoGetServerInfo(response) : allowed);
}

grpc::Status GenerationService::DoGenerate(grpc::ServerContext* context,
                                           const v1::GenerateRequest* request,
                                           grpc::ServerWriter<v1::GenerateResponse>* writer) {
  std::unique_ptr<RequestSession> session;
  if (grpc::Status status = Start(*request, &session); !status.ok()) return status;
  while (true) {
    std::optional<RequestOutput> delta = NextOrCancelled(context, *session);
    if (!delta.has_value()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the request");
    }
    if (!delta->error.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, delta->error);
    }
    v1::GenerateResponse response;
    ToProto(*delta, &response);
    if (!writer->Write(response)) {
      session->Cancel();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    if (delta->finished) return grpc::Status::OK;
  }
}

grpc::Status GenerationService::DoComplete(grpc::ServerContext* context,
                                           const v1::GenerateRequest* request,
                                           v1::CompleteResponse* response) {
  std::unique_ptr<RequestSession> session;
  if (grpc::Status status = Start(*request, &session); !status.ok()) return status;
  // The client sees nothing before the end, so a failed replica's request may start over.
  session->CollectWhole();
  RequestOutput total;
  total.request_id = session->request_id();
  while (true) {
    std::optional<RequestOutput> delta = NextOrCancelled(context, *session);
    if (!delta.has_value()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the request");
    }
    if (!delta->error.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, delta->error);
    }
    MergeRequestOutput(total, *delta);
    if (delta->finished) break;
  }
  response->set_request_id(total.request_id);
  for (const CompletionOutput& out : total.outputs) ToProto(out, response->add_completions());
  if (total.usage.has_value()) ToProto(*total.usage, response->mutable_usage());
  return grpc::Status::OK;
}

grpc::Status GenerationService::DoTokenize(const v1::TokenizeRequest* request,
                                           v1::TokenizeResponse* response) {
  if (absl::Status status = frontend_->CheckModel(request->model()); !status.ok()) {
    return ToGrpc(status);
  }
  const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
  const std::vector<int32_t> ids = frontend_->tokenizer().Encode(request->text(), add_special);
  response->mutable_token_ids()->Add(ids.begin(), ids.end());
  response->set_max_model_len(frontend_->limits().max_model_len);
  return grpc::Status::OK;
}

grpc::Status GenerationService::DoDetokenize(const v1::DetokenizeRequest* request,
                                             v1::DetokenizeResponse* response) {
  if (absl::Status status = frontend_->CheckModel(request->model()); !status.ok()) {
    return ToGrpc(status);
  }
  const int64_t vocab_size = frontend_->limits().vocab_size;
  for (int i = 0; i < request->token_ids_size(); ++i) {
    const int32_t id = request->token_ids(i);
    if (id < 0 || id >= vocab_size) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("token_ids: ", id, " at position ", i,
                                       " is outside the vocabulary [0, ", vocab_size, ")"));
    }
  }
  const bool skip_special = !request->has_skip_special_tokens() || request->skip_special_tokens();
  response->set_text(frontend_->tokenizer().Decode(
      std::vector<int32_t>(request->token_ids().begin(), request->token_ids().end()),
      skip_special));
  return grpc::Status::OK;
}

grpc::Status GenerationService::DoListModels(v1::ListModelsResponse* response) {
  v1::ModelInfo* model = response->add_models();
  model->set_id(frontend_->model_name());
  model->set_max_model_len(frontend_->limits().max_model_len);
  model->set_vocab_size(frontend_->limits().vocab_size);
  model->set_owned_by("pagoda");
  model->set_created(frontend_->created_unix_seconds());
  return grpc::Status::OK;
}

grpc::Status GenerationService::DoGetServerInfo(v1::GetServerInfoResponse* response) {
  response->set_version(version_);
  response->set_model(frontend_->model_name());
  response->set_scheduling_policy(routing_policy_);
  response->set_max_model_len(frontend_->limits().max_model_len);
  response->set_max_n(frontend_->limits().max_n);
  response->set_max_queued_requests(max_queued_requests_);
  ReplicaSet& replicas = frontend_->replicas();
  for (int32_t i = 0; i < replicas.num_replicas(); ++i) {
    const Replica& replica = replicas.replica(i);
    const ReplicaStatus status = replica.status();
    v1::ReplicaInfo* info = response->add_replicas();
    info->set_index(i);
    info->set_state(std::string(ReplicaStateName(status.state)));
    info->set_tp_size(static_cast<int32_t>(replica.worker_addresses().size()));
    for (const std::string& address : replica.worker_addresses()) {
      info->add_worker_addresses(address);
    }
    info->set_num_running_requests(status.stats.num_running_requests);
    info->set_num_waiting_requests(status.stats.num_waiting_requests);
    info->set_kv_cache_usage(status.stats.kv_cache_usage);
    info->set_num_device_blocks(status.num_device_blocks);
    info->set_prefix_cache_queries(status.stats.prefix_cache_queries);
    info->set_prefix_cache_hits(status.stats.prefix_cache_hits);
    info->set_num_preemptions(status.stats.num_preemptions);
    info->set_num_restarts(status.num_restarts);
    info->set_last_error(status.last_error);
  }
  return grpc::Status::OK;
}

}  // namespace pagoda
