// A hostile pagoda.v1.GenerateRequest as it arrives on the wire: protobuf decoding, then what
// GenerationService::Start and Frontend::Submit do before admission — the sampling parameters'
// decoding, tokenization of a text prompt and validation against the serving limits.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pagoda/v1/generation.pb.h"
#include "proto/step_codec.h"
#include "router/frontend/request_validation.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const pagoda::Tokenizer& tokenizer = pagoda::fuzz::TestTokenizer("gpt2_tokenizer");
  pagoda::v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<pagoda::SamplingParams> params = pagoda::DecodeSamplingParams(request.sampling());
  if (!params.ok()) return 0;
  std::vector<int32_t> ids;
  if (request.prompt_case() == pagoda::v1::GenerateRequest::kText) {
    ids = tokenizer.Encode(request.text(),
                           !request.has_add_special_tokens() || request.add_special_tokens());
  } else {
    ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
  }
  (void)pagoda::ValidateGenerationRequest(
      ids, *params, {.max_model_len = 2048, .vocab_size = tokenizer.vocab_size(), .max_n = 4});
  return 0;
}
