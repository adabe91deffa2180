#include "common/unicode_util.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

namespace pagoda {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at text[pos], or 0 when it is invalid; `*valid_prefix` is
// the number of bytes that began a valid sequence (the maximal subpart to replace).
size_t ValidSequenceLength(std::string_view text, size_t pos, size_t* valid_prefix) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  *valid_prefix = 1;
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint8_t second_lo = 0x80, second_hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_lo = 0xA0;
    if (lead == 0xED) second_hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_lo = 0x90;
    if (lead == 0xF4) second_hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < length; ++k) {
    if (pos + k >= text.size()) return 0;
    const uint8_t b = byte(pos + k);
    const uint8_t lo = k == 1 ? second_lo : 0x80;
    const uint8_t hi = k == 1 ? second_hi : 0xBF;
    if (b < lo || b > hi) return 0;
    *valid_prefix = k + 1;
  }
  return length;
}

utf8proc_category_t Category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

}  // namespace

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t valid_prefix = 0;
    const size_t length = ValidSequenceLength(text, pos, &valid_prefix);
    if (length > 0) {
      out.append(text.substr(pos, length));
      pos += length;
    } else {
      out.append(kReplacementChar);
      pos += valid_prefix;
    }
  }
  return out;
}

bool IsValidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t valid_prefix = 0;
    const size_t length = ValidSequenceLength(text, pos, &valid_prefix);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

size_t Utf8CharLength(std::string_view text, size_t pos) {
  const uint8_t lead = static_cast<uint8_t>(text[pos]);
  size_t length = 1;
  if (lead >= 0xF0) {
    length = 4;
  } else if (lead >= 0xE0) {
    length = 3;
  } else if (lead >= 0xC0) {
    length = 2;
  }
  return pos + length <= text.size() ? length : 1;
}

char32_t DecodeUtf8At(std::string_view text, size_t pos) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(&text[pos]),
                       static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
  return n > 0 ? static_cast<char32_t>(cp) : 0xFFFD;
}

void AppendUtf8(char32_t cp, std::string& out) {
  utf8proc_uint8_t buffer[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

std::vector<std::string_view> SplitUtf8Chars(std::string_view text) {
  std::vector<std::string_view> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8CharLength(text, pos);
    chars.push_back(text.substr(pos, length));
    pos += length;
  }
  return chars;
}

bool IsUnicodeWhitespace(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool IsUnicodeAlphanumeric(char32_t cp) {
  const utf8proc_category_t c = Category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
         (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

bool IsUnicodeNumeric(char32_t cp) {
  const utf8proc_category_t c = Category(cp);
  return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

bool IsUnicodePunctuation(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  }
  const utf8proc_category_t c = Category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

std::string NormalizeUnicode(std::string_view text, NormalizationForm form) {
  if (text.empty()) return std::string();
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalizationForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalizationForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalizationForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) return std::string(text);  // invalid UTF-8 cannot reach here: input is sanitized
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  return std::string(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
}

std::string LowercaseUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8CharLength(text, pos);
    const char32_t cp = DecodeUtf8At(text, pos);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp));
    } else if (cp == 0x130) {
      out.append("i\xCC\x87");  // full lowercase mapping of U+0130, as Rust's to_lowercase
    } else {
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
    }
    pos += length;
  }
  return out;
}

std::string StripAccents(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8CharLength(text, pos);
    if (Category(DecodeUtf8At(text, pos)) != UTF8PROC_CATEGORY_MN) {
      out.append(text.substr(pos, length));
    }
    pos += length;
  }
  return out;
}

const ByteUnicodeTable& ByteUnicodeTable::Get() {
  static const ByteUnicodeTable* const table = new ByteUnicodeTable();
  return *table;
}

ByteUnicodeTable::ByteUnicodeTable() {
  cp_to_byte_.fill(-1);
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? static_cast<char32_t>(b) : 256 + next_extra++;
    AppendUtf8(cp, byte_to_utf8_[b]);
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

std::string ByteUnicodeTable::EncodeBytes(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(byte_to_utf8_[static_cast<uint8_t>(c)]);
  return out;
}

int ByteUnicodeTable::Decode(char32_t cp) const {
  return cp < cp_to_byte_.size() ? cp_to_byte_[cp] : -1;
}

}  // namespace pagoda
