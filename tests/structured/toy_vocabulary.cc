#include "tests/structured/toy_vocabulary.h"

#include <string>
#include <vector>

#include "common/check.h"

namespace pagoda::structured::testing {

std::shared_ptr<const TokenVocabulary> ToyVocabulary() {
  std::vector<std::string> tokens = {"", ""};  // EOS, a special token
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  for (const char* t : {"\":\"",
                        "\": ",
                        "\":",
                        "\",\"",
                        "\", \"",
                        "\"},{\"",
                        "{\"",
                        "\"}",
                        "\"]",
                        "[\"",
                        "},",
                        "}]",
                        "}}",
                        "]}",
                        "true",
                        "false",
                        "null",
                        "name",
                        "age",
                        "\"name\"",
                        "12",
                        "00",
                        "-1",
                        "0.5",
                        "e+",
                        "\xC3\xA9",
                        "\xE6\x97\xA5\xE6\x9C\xAC",
                        "\xC3\xBC\"",
                        "\xF0\x9F\x98\x80",
                        "\xE6\x97",
                        "\n  ",
                        "  ",
                        "\\\"",
                        "\\u00",
                        "abc",
                        "yes",
                        "no",
                        "2024-",
                        "-01",
                        "T12:",
                        "@",
                        ".com",
                        "ab",
                        "\"a",
                        "\"}}",
                        "\", ",
                        "id",
                        "tags",
                        "\"tags\": [",
                        "1,",
                        ", ",
                        "{\"name\": \"",
                        "\\n",
                        "Z\"",
                        "00:00",
                        "-4",
                        "x-",
                        "AB",
                        "ABC-12"}) {
    tokens.push_back(t);
  }
  auto vocab = TokenVocabulary::Create(tokens, {kToyEos}, "toy");
  PAGODA_CHECK(vocab.ok());
  return *vocab;
}

}  // namespace pagoda::structured::testing
