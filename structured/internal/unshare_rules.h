// Gives each use of a small shared rule its own copy (with everything it references), so that
// CompiledGrammar's known context around a byte position reaches past it: the `ws` or `string`
// before `":"` then knows that `":"` follows, and a token such as ` "` or `abc",` is decided
// ahead of time instead of at every decoding step.
//
// A rule is copied per use when it is used from more than one place, is not the root, cannot
// reach itself, and it and everything it reaches hold at most kMaxCopiedPositions positions; the
// copies of one use share nothing with other uses. The total stays under kMaxTotalPositions.
#pragma once

#include <cstdint>
#include <vector>

#include "structured/grammar.h"

namespace pagoda::structured::internal {

inline constexpr int32_t kMaxCopiedPositions = 160;
inline constexpr int32_t kMaxTotalPositions = 1 << 18;

struct UnsharedGrammar {
  Grammar grammar;
  std::vector<int32_t> origin_rule;  // [rule] -> the rule of the input it copies (or is)
  std::vector<bool> copy_root;       // [rule] -> the top rule of one use's copy
};

UnsharedGrammar UnshareSmallRules(const Grammar& grammar);

}  // namespace pagoda::structured::internal
