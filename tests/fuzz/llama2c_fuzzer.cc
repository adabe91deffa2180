// A hostile llama2.c checkpoint header or tokenizer .bin (the same bytes through both readers),
// and the conversion of a tokenizer that parses to tokenizer.json and back to a Tokenizer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "common/formats/llama2c.h"
#include "common/tokenizer/llama2c_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    pagoda::fuzz::MemoryFile input(data, size);
    absl::StatusOr<pagoda::Llama2cHeader> header = pagoda::ReadLlama2cHeader(input.path());
    if (header.ok()) (void)header->ToModelConfig();
  }
  absl::StatusOr<pagoda::Llama2cVocab> vocab = pagoda::ParseLlama2cTokenizer(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "<fuzz input>");
  if (!vocab.ok()) return 0;
  absl::StatusOr<pagoda::HfTokenizerFiles> files =
      pagoda::ConvertLlama2cTokenizer(*vocab, /*model_max_length=*/256);
  if (!files.ok()) return 0;
  absl::StatusOr<std::unique_ptr<pagoda::Tokenizer>> tokenizer = pagoda::Tokenizer::FromJson(
      files->tokenizer_json, files->tokenizer_config_json, "<converted fuzz input>");
  if (tokenizer.ok()) (void)(*tokenizer)->Encode("Once upon a time", true);
  return 0;
}
