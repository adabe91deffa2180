// UTF-8 and Unicode helpers shared by the tokenizer components: decoding and encoding code
// points, repairing invalid UTF-8, character classes, normalization forms (through utf8proc) and
// the GPT-2 byte <-> printable-character table used by byte-level BPE.
//
//   std::string text = SanitizeUtf8(raw);           // bad bytes -> U+FFFD
//   for (std::string_view ch : SplitUtf8Chars(text)) { ... }
//   std::string nfc = NormalizeUnicode(text, NormalizationForm::kNfc);
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pagoda {

/// Replaces every maximal invalid UTF-8 subsequence by U+FFFD (as Python's errors="replace"
/// and Rust's from_utf8_lossy do).
std::string SanitizeUtf8(std::string_view text);

/// True when `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

/// Length in bytes of the UTF-8 character starting at text[pos] (1 for a stray byte).
size_t Utf8CharLength(std::string_view text, size_t pos);

/// Decodes the character at text[pos]; `text` must be valid UTF-8.
char32_t DecodeUtf8At(std::string_view text, size_t pos);

/// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string& out);

/// Splits valid UTF-8 into its characters (views into `text`).
std::vector<std::string_view> SplitUtf8Chars(std::string_view text);

/// Unicode White_Space, as Rust's char::is_whitespace.
bool IsUnicodeWhitespace(char32_t cp);
/// Letters and numbers (categories L* and N*), as Rust's char::is_alphanumeric.
bool IsUnicodeAlphanumeric(char32_t cp);
/// Numbers (categories Nd, Nl, No), as Rust's char::is_numeric.
bool IsUnicodeNumeric(char32_t cp);
/// Punctuation (categories P*) or ASCII punctuation.
bool IsUnicodePunctuation(char32_t cp);

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };

/// Applies a Unicode normalization form to valid UTF-8.
std::string NormalizeUnicode(std::string_view text, NormalizationForm form);

/// Lowercases valid UTF-8 character by character.
std::string LowercaseUtf8(std::string_view text);

/// Removes combining marks (category Mn), as the StripAccents normalizer does after NFD.
std::string StripAccents(std::string_view text);

/// GPT-2's reversible map from bytes to printable characters (byte-level BPE): printable Latin-1
/// bytes map to themselves, the others to U+0100 and up.
class ByteUnicodeTable {
 public:
  static const ByteUnicodeTable& Get();

  /// UTF-8 text of the character standing for `byte`.
  const std::string& Encode(uint8_t byte) const { return byte_to_utf8_[byte]; }
  /// Maps every byte of `bytes` to its character.
  std::string EncodeBytes(std::string_view bytes) const;
  /// The byte that `cp` stands for, or -1 when `cp` is not in the table.
  int Decode(char32_t cp) const;

 private:
  ByteUnicodeTable();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int16_t, 512> cp_to_byte_;  // code points < 512 only
};

}  // namespace pagoda
