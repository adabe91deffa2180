// HttpBackend: `pagoda bench serve --target http://...` — each request is one POST
// /v1/completions with "stream": true and "stream_options": {"include_usage": true} on its own
// connection (so no idle keep-alive connection holds a server thread between requests), read as
// Server-Sent Events: a `data: {...}` chunk with choices is an output chunk, the chunk with
// "usage" gives the token counts, `data: [DONE]` ends it. Prompts go as text.
//
//   HttpBackend backend("127.0.0.1", 8000, /*api_key=*/"");
//   RequestRecord record = backend.Send(request, {.model = "stories260K"});
#pragma once

#include <string>

#include "tools/bench/serving_backend.h"

namespace pagoda {

class HttpBackend final : public ServingBackend {
 public:
  HttpBackend(std::string host, int port, std::string api_key)
      : host_(std::move(host)), port_(port), api_key_(std::move(api_key)) {}

  absl::StatusOr<ServedModel> GetServedModel() override;
  RequestRecord Send(const BenchRequest& request, const RequestParams& params) override;

 private:
  const std::string host_;
  const int port_;
  const std::string api_key_;
};

}  // namespace pagoda
