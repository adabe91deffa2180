// Code point ranges as UTF-8 byte-range sequences (the algorithm of Rust's utf8-ranges): every
// code point in [lo, hi] (surrogates excluded) encodes to exactly the byte strings that match one
// of the returned sequences, where a sequence matches byte i from its range i.
//
//   for (const Utf8Sequence& seq : Utf8Sequences(0x80, 0x7FF)) { ... seq[i].first..seq[i].second }
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pagoda::structured::internal {

using Utf8Sequence = std::vector<std::pair<uint8_t, uint8_t>>;  // [byte index] -> [lo, hi]

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

/// Sequences covering [lo, hi] without the surrogates D800-DFFF; empty when lo > hi.
std::vector<Utf8Sequence> Utf8Sequences(uint32_t lo, uint32_t hi);

/// The UTF-8 encoding of a code point (<= kMaxCodePoint).
std::string EncodeUtf8(uint32_t code_point);

/// Decodes the code point at text[*pos], advancing *pos; invalid UTF-8 gives false.
bool DecodeUtf8(const std::string& text, size_t* pos, uint32_t* code_point);

}  // namespace pagoda::structured::internal
