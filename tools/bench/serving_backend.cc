#include "tools/bench/serving_backend.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tools/bench/grpc_backend.h"
#include "tools/bench/http_backend.h"

namespace pagoda {

std::string BenchTarget::ToString() const {
  return absl::StrCat(protocol == Protocol::kGrpc ? "grpc" : "http", "://", host, ":", port);
}

absl::StatusOr<BenchTarget> ParseBenchTarget(std::string_view target_url) {
  const absl::string_view url(target_url.data(), target_url.size());
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--target must be grpc://HOST:PORT or http://HOST:PORT (", why, "), got '", url, "'"));
  };
  BenchTarget target;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "grpc://")) {
    target.protocol = BenchTarget::Protocol::kGrpc;
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    target.protocol = BenchTarget::Protocol::kHttp;
  } else {
    return bad("unknown scheme");
  }
  absl::ConsumeSuffix(&rest, "/");
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad("no HOST:PORT");
  target.host = std::string(rest.substr(0, colon));
  if (!absl::SimpleAtoi(rest.substr(colon + 1), &target.port) || target.port < 1 ||
      target.port > 65535) {
    return bad("the port must be in [1, 65535]");
  }
  return target;
}

absl::StatusOr<std::unique_ptr<ServingBackend>> MakeServingBackend(const BenchTarget& target,
                                                                   const std::string& api_key) {
  if (target.protocol == BenchTarget::Protocol::kGrpc) {
    return std::unique_ptr<ServingBackend>(
        std::make_unique<GrpcBackend>(absl::StrCat(target.host, ":", target.port)));
  }
  return std::unique_ptr<ServingBackend>(
      std::make_unique<HttpBackend>(target.host, target.port, api_key));
}

void ChunkTimer::OnOutputChunk() {
  const Clock::time_point now = Clock::now();
  if (!first_seen_) {
    first_seen_ = true;
    ttft_s_ = std::chrono::duration<double>(now - start_).count();
  } else {
    itl_s_.push_back(std::chrono::duration<double>(now - last_).count());
  }
  last_ = now;
}

void ChunkTimer::Finish(RequestRecord& record) const {
  record.latency_s = std::chrono::duration<double>(Clock::now() - start_).count();
  record.ttft_s = ttft_s_;
  record.itl_s = itl_s_;
}

}  // namespace pagoda
