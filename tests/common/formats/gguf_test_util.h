// Shared by the GGUF tests: the fixtures that tests/data/make_gguf_fixtures.py writes (a GGUF
// file and the JSON of what its writer was given), an independent walk over a good file's
// structures, and the byte surgery that corrupts it.
//
//   const Fixture& f = LoadFixture("tiny_llama");
//   std::string bytes = f.bytes;
//   PutU64(bytes, f.layout.FindInfo("token_embd.weight").offset_pos, 1);
//   EXPECT_TRUE(IsError(ParseStatus(bytes), absl::StatusCode::kInvalidArgument, {"alignment"}));
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/formats/gguf.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda::gguf_testing {

inline constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

/// PAGODA_GGUF_FIXTURE_DIR/name.
std::string FixturePath(const std::string& name);

// Little-endian encodings and in-place patches.
std::string U32(uint32_t v);
std::string U64(uint64_t v);
std::string Str(const std::string& s);  // a GGUF string: u64 length, bytes
void PutU32(std::string& bytes, uint64_t at, uint32_t v);
void PutU64(std::string& bytes, uint64_t at, uint64_t v);
uint32_t GetU32(const std::string& bytes, uint64_t at);
uint64_t GetU64(const std::string& bytes, uint64_t at);
std::string FromHex(const std::string& hex);

/// A parse of an exactly sized heap copy of some bytes, so that AddressSanitizer sees any read
/// past the end; the copy lives as long as the parsed file.
struct Parsed {
  std::unique_ptr<std::vector<std::byte>> buffer;
  absl::StatusOr<std::unique_ptr<GgufFile>> file;
};
Parsed ParseCopy(const std::string& bytes, const std::string& source = "test.gguf");
absl::Status ParseStatus(const std::string& bytes);

/// Checks a status's code and that its message holds each of `parts`.
::testing::AssertionResult IsError(const absl::Status& status, absl::StatusCode code,
                                   std::initializer_list<std::string> parts);

/// Where a good file's structures start and end (found without the reader under test).
struct Entry {
  std::string key;
  uint64_t begin, key_end, type_pos, value_pos, end;
};
struct Info {
  std::string name;
  uint64_t begin, name_end, dims_pos, type_pos, offset_pos, end;
  uint32_t num_dims;
  uint64_t offset, num_bytes;
};
/// [begin, end) and the field the reader must name when the file ends inside it.
struct Field {
  uint64_t begin, end;
  std::string label;
};
struct Layout {
  uint64_t num_entries, num_tensors, infos_begin, infos_end, alignment = 32, data_start, data_end;
  std::vector<Entry> entries;
  std::vector<Info> infos;
  std::vector<Field> fields;         // cover [0, data_end) in order
  std::vector<uint64_t> boundaries;  // every structure's start and end

  const Entry& FindEntry(const std::string& key) const;
  const Info& FindInfo(const std::string& name) const;
};
/// `tensor_bytes`: each tensor's data size, from the fixture's JSON (not the reader's tables).
Layout Walk(const std::string& bytes, const std::vector<uint64_t>& tensor_bytes);

struct Fixture {
  std::string name;
  std::string bytes;
  nlohmann::json expected;
  Layout layout;
};
/// NAME.gguf and NAME.json, read once; exits with a hint when the fixtures were not written.
const Fixture& LoadFixture(const std::string& name);

/// The fixture with metadata entries {key, type and value bytes} inserted before the tensor
/// infos, then a u8 filler entry "test.pad..." sized so that the insertion is a multiple of the
/// alignment: the data section then moves by whole alignment units and every tensor offset
/// stays valid.
std::string InsertEntries(const Fixture& f,
                          const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace pagoda::gguf_testing
