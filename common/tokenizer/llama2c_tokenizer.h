// llama2.c's tokenizer (tok*.bin / tokenizer.bin) and its conversion to Hugging Face files.
//
// The .bin holds int32 max_token_length, then per token a float32 score, an int32 byte length and
// the bytes. llama2.c encodes by prepending one space to non-empty text, mapping each UTF-8
// character to its piece (or its bytes, "<0xNN>", when absent) and then repeatedly merging the
// adjacent pair whose concatenation is the piece with the highest score (leftmost on ties).
// The conversion writes a SentencePiece-style BPE tokenizer.json (byte fallback, "▁" for space,
// merges ranked by the score of the merged piece) that encodes the same ids.
//
//   ASSIGN_OR_RETURN(Llama2cVocab vocab, ReadLlama2cTokenizer("tok512.bin", /*vocab_size=*/512));
//   ASSIGN_OR_RETURN(HfTokenizerFiles files, ConvertLlama2cTokenizer(vocab, /*max_length=*/512));
//   RETURN_IF_ERROR(WriteStringToFile(dir + "/tokenizer.json", files.tokenizer_json));
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;  // raw bytes; ids 0, 1, 2 are <unk>, <s>, </s>
  std::vector<float> scores;        // [pieces.size()]
};

/// Parses a tokenizer .bin. `vocab_size` > 0 reads exactly that many tokens (the checkpoint's
/// vocab_size); otherwise tokens are read to the end of the file. Errors name `source`.
absl::StatusOr<Llama2cVocab> ParseLlama2cTokenizer(std::span<const std::byte> bytes,
                                                   std::string_view source,
                                                   int64_t vocab_size = -1);
absl::StatusOr<Llama2cVocab> ReadLlama2cTokenizer(const std::string& path, int64_t vocab_size = -1);

/// Converts to tokenizer.json + tokenizer_config.json (add_bos_token true, add_eos_token false).
absl::StatusOr<HfTokenizerFiles> ConvertLlama2cTokenizer(const Llama2cVocab& vocab,
                                                         int64_t model_max_length);

}  // namespace pagoda
