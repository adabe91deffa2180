// A tokenizer for benchmarks that run a model without its tokenizer (dummy weights, random
// token ids): a BPE vocabulary of "t<id>" for every id below the model's vocabulary size, without
// merges, so that the engine's output processor detokenizes every generated id as it would with
// a real tokenizer.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, MakeSyntheticTokenizer(49152));
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeSyntheticTokenizer(int64_t vocab_size);

}  // namespace pagoda
