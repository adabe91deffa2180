// ServingBackend: how `pagoda bench serve` talks to a server — one streaming request at a time
// per calling thread, timed on the client. Two twins implement it: GrpcBackend (pagoda.v1
// Generation/Generate) and HttpBackend (OpenAI /v1/completions with SSE). The target URL's
// scheme picks one.
//
//   ASSIGN_OR_RETURN(BenchTarget target, ParseBenchTarget("grpc://127.0.0.1:50051"));
//   ASSIGN_OR_RETURN(std::unique_ptr<ServingBackend> backend, MakeServingBackend(target, ""));
//   ASSIGN_OR_RETURN(ServedModel model, backend->GetServedModel());
//   RequestRecord record = backend->Send(request, {.model = model.id, .ignore_eos = true});
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/bench/bench_metrics.h"
#include "tools/bench/dataset.h"

namespace pagoda {

struct BenchTarget {
  enum class Protocol { kGrpc, kHttp };
  Protocol protocol = Protocol::kGrpc;
  std::string host;
  int port = 0;

  std::string ToString() const;  // "grpc://host:port"
};

/// "grpc://HOST:PORT" or "http://HOST:PORT" (a trailing "/" is allowed).
absl::StatusOr<BenchTarget> ParseBenchTarget(std::string_view url);

/// What the server serves (gRPC ListModels, HTTP GET /v1/models).
struct ServedModel {
  std::string id;
  int64_t max_model_len = 0;  // tokens; 0 when the server does not say
};

/// Per-request settings, the same for every request of a run.
struct RequestParams {
  std::string model;  // the served model's id
  double temperature = 0;
  bool ignore_eos = false;
  absl::Duration timeout = absl::Minutes(10);
};

class ServingBackend {
 public:
  virtual ~ServingBackend() = default;

  virtual absl::StatusOr<ServedModel> GetServedModel() = 0;
  /// Sends `request` as one streaming request and waits for its end. Thread-safe. A failure
  /// (refused, broken stream, no usage) is a record with success = false and the error; times
  /// are from the call, so start_time_s is left to the caller.
  virtual RequestRecord Send(const BenchRequest& request, const RequestParams& params) = 0;
};

/// The backend for `target`'s protocol. `api_key`: HTTP "Authorization: Bearer" (may be empty).
absl::StatusOr<std::unique_ptr<ServingBackend>> MakeServingBackend(const BenchTarget& target,
                                                                   const std::string& api_key);

/// The client-side clock of one streamed request: TTFT at the first output chunk, one ITL gap
/// per later output chunk, E2EL at Finish. Both backends time through it.
class ChunkTimer {
 public:
  ChunkTimer() : start_(Clock::now()), last_(start_) {}

  /// A chunk that carried output arrived now.
  void OnOutputChunk();
  /// The response ended now: fills record's ttft_s, itl_s and latency_s.
  void Finish(RequestRecord& record) const;

 private:
  using Clock = std::chrono::steady_clock;

  Clock::time_point start_;
  Clock::time_point last_;
  bool first_seen_ = false;
  double ttft_s_ = 0;
  std::vector<double> itl_s_;
};

}  // namespace pagoda
