// Hostile prompt text (any bytes, invalid UTF-8 included) through each tokenizer family of
// tests/data: encode, decode, and the streaming detokenizer over the ids; then the input's
// bytes read as token ids (a token_ids prompt or a worker's output) through the detokenizer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "common/tokenizer/incremental_detokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* name :
       {"gpt2_tokenizer", "bytelevel_tokenizer", "llama2_tokenizer", "metaspace_tokenizer"}) {
    const pagoda::Tokenizer& tokenizer = pagoda::fuzz::TestTokenizer(name);
    const std::vector<int32_t> ids = tokenizer.Encode(text, /*add_special_tokens=*/true);
    (void)tokenizer.Decode(ids, /*skip_special_tokens=*/false);
    pagoda::IncrementalDetokenizer detokenizer(tokenizer, {});
    for (int32_t id : ids) (void)detokenizer.Append(id);
    (void)detokenizer.Finish();

    std::vector<int32_t> raw_ids(size / sizeof(int32_t));
    if (!raw_ids.empty()) std::memcpy(raw_ids.data(), data, raw_ids.size() * sizeof(int32_t));
    (void)tokenizer.Decode(raw_ids, /*skip_special_tokens=*/true);
    pagoda::IncrementalDetokenizer raw(tokenizer, raw_ids);
    (void)raw.Append(raw_ids);
    (void)raw.Finish();
  }
  return 0;
}
