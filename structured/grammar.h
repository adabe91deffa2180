// The grammar IR of structured outputs: a context-free grammar over bytes.
//
// A rule is a list of alternatives; an alternative is a sequence of elements; an element is a set
// of bytes (one input byte from the set) or a reference to a rule. Unicode text is UTF-8, so a
// character class over code points becomes alternatives of byte-set sequences (the GBNF parser
// does that). Repetition and grouping are desugared into helper rules by whoever builds the
// grammar (`x*` becomes the left-recursive `r ::= r x | ""`, which an Earley matcher runs in
// constant work per byte).
//
// Grammar::Create validates the references, drops every alternative that can derive no string
// (so a matcher that has accepted a prefix can always complete it: no dead ends), fails when the
// root derives nothing, and lays the rules out as one flat array of dotted positions for
// GrammarMatcher:
//
//   ASSIGN_OR_RETURN(Grammar g, Grammar::Create(std::move(rules), std::move(byte_sets), root));
//   g.alternative_starts(g.root())  // first positions of the root's alternatives
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda::structured {

/// A set of bytes (256 bits).
class ByteSet {
 public:
  void Add(uint8_t b) { bits_[b >> 6] |= uint64_t{1} << (b & 63); }
  void AddRange(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) Add(static_cast<uint8_t>(b));
  }
  bool Contains(uint8_t b) const { return (bits_[b >> 6] >> (b & 63)) & 1; }
  bool empty() const { return (bits_[0] | bits_[1] | bits_[2] | bits_[3]) == 0; }
  void UnionWith(const ByteSet& other) {
    for (int i = 0; i < 4; ++i) bits_[i] |= other.bits_[i];
  }
  /// Every byte of `other` is in this set.
  bool ContainsAll(const ByteSet& other) const {
    for (int i = 0; i < 4; ++i) {
      if (other.bits_[i] & ~bits_[i]) return false;
    }
    return true;
  }
  bool operator==(const ByteSet& other) const { return bits_ == other.bits_; }
  const std::array<uint64_t, 4>& words() const { return bits_; }

 private:
  std::array<uint64_t, 4> bits_{};
};

struct GrammarElement {
  enum class Kind : uint8_t { kBytes, kRule };
  Kind kind = Kind::kBytes;
  int32_t index = 0;  // kBytes: into the grammar's byte sets; kRule: a rule id
};

struct GrammarRule {
  std::string name;
  std::vector<std::vector<GrammarElement>> alternatives;  // an empty sequence derives ""
};

/// One dotted position of the flat layout: the element after the dot, or the end of an
/// alternative of `rule`.
struct GrammarPosition {
  enum class Kind : uint8_t { kBytes, kRule, kEnd };
  Kind kind = Kind::kEnd;
  int32_t index = 0;  // kBytes: byte set; kRule: the rule referenced
  int32_t rule = 0;   // the rule this position belongs to
};

/// Immutable once created; share it as std::shared_ptr<const Grammar> across threads.
class Grammar {
 public:
  /// Limits on what Create accepts (a request's grammar is untrusted input).
  static constexpr int32_t kMaxRules = 1 << 16;
  static constexpr int32_t kMaxPositions = 1 << 20;

  /// Validates and normalizes (see the file comment). InvalidArgument names the problem: a
  /// reference to a missing rule, too many rules/positions, or a root that derives nothing.
  static absl::StatusOr<Grammar> Create(std::vector<GrammarRule> rules,
                                        std::vector<ByteSet> byte_sets, int32_t root);

  int32_t root() const { return root_; }
  int32_t num_rules() const { return static_cast<int32_t>(rules_.size()); }
  const GrammarRule& rule(int32_t id) const { return rules_[id]; }
  const ByteSet& byte_set(int32_t id) const { return byte_sets_[id]; }
  const std::vector<ByteSet>& byte_sets() const { return byte_sets_; }
  bool nullable(int32_t rule) const { return nullable_[rule]; }

  const std::vector<GrammarPosition>& positions() const { return positions_; }
  const std::vector<int32_t>& alternative_starts(int32_t rule) const { return starts_[rule]; }

  /// The grammar in GBNF (helper rules included), for error messages and tests.
  std::string ToString() const;

 private:
  Grammar() = default;

  std::vector<GrammarRule> rules_;
  std::vector<ByteSet> byte_sets_;
  int32_t root_ = 0;
  std::vector<bool> nullable_;
  std::vector<GrammarPosition> positions_;
  std::vector<std::vector<int32_t>> starts_;  // [rule] -> first position of each alternative
};

}  // namespace pagoda::structured
