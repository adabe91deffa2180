// Why a request stopped generating, with the names the OpenAI API and vLLM report.
//
//   response["finish_reason"] = std::string(FinishReasonName(FinishReason::kLength));  // "length"
#pragma once

#include <string_view>

namespace pagoda {

enum class FinishReason {
  kStop,    // EOS, a stop token id or a stop string
  kLength,  // max_tokens or max_model_len reached
  kAbort,   // cancelled by the client or the engine
};

constexpr std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "unknown";
}

}  // namespace pagoda
