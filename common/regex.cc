#define PCRE2_CODE_UNIT_WIDTH 8
#include "common/regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

pcre2_code* Code(void* code) { return static_cast<pcre2_code*>(code); }

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool literal) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_LITERAL does not combine with PCRE2_UCP, which a literal does not need.
  const uint32_t options = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("cannot compile regex '", std::string(pattern),
                                                   "' at offset ", error_offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  // JIT is an optimization: where it is unavailable the interpreter runs the same pattern.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(code));
}

Regex::~Regex() { pcre2_code_free(Code(code_)); }

std::vector<Regex::Match> Regex::FindAll(std::string_view text) const {
  std::vector<Match> matches;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(Code(code_), nullptr));
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The input is valid UTF-8 (sanitized at the tokenizer's edge), so PCRE2 need not check it.
    int rc = pcre2_match(Code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(),
                         nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT stack is small by default; the interpreter keeps its frames on the heap.
      rc = pcre2_match(Code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       data.get(), nullptr);
    }
    if (rc < 0) break;  // no match (or a resource limit): the rest of the text is unmatched
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const Match match{ovector[0], ovector[1]};
    if (match.end < match.begin) break;  // \K in a lookahead; not used by tokenizers
    matches.push_back(match);
    if (match.end > match.begin) {
      start = match.end;
    } else if (match.end < text.size()) {
      start = match.end + Utf8CharLength(text, match.end);
    } else {
      break;
    }
  }
  return matches;
}

}  // namespace pagoda
