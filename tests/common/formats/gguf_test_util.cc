#include "tests/common/formats/gguf_test_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace pagoda::gguf_testing {

using json = nlohmann::json;

std::string FixturePath(const std::string& name) {
  return std::string(PAGODA_GGUF_FIXTURE_DIR) + "/" + name;
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

std::string U32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string U64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string Str(const std::string& s) { return U64(s.size()) + s; }
void PutU32(std::string& bytes, uint64_t at, uint32_t v) { std::memcpy(&bytes[at], &v, 4); }
void PutU64(std::string& bytes, uint64_t at, uint64_t v) { std::memcpy(&bytes[at], &v, 8); }
uint32_t GetU32(const std::string& bytes, uint64_t at) {
  uint32_t v;
  std::memcpy(&v, &bytes[at], 4);
  return v;
}
uint64_t GetU64(const std::string& bytes, uint64_t at) {
  uint64_t v;
  std::memcpy(&v, &bytes[at], 8);
  return v;
}

std::string FromHex(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

Parsed ParseCopy(const std::string& bytes, const std::string& source) {
  Parsed parsed{std::make_unique<std::vector<std::byte>>(bytes.size()), absl::UnknownError("")};
  if (!bytes.empty()) std::memcpy(parsed.buffer->data(), bytes.data(), bytes.size());
  parsed.file = GgufFile::Parse(*parsed.buffer, source);
  return parsed;
}
absl::Status ParseStatus(const std::string& bytes) { return ParseCopy(bytes).file.status(); }

::testing::AssertionResult IsError(const absl::Status& status, absl::StatusCode code,
                                   std::initializer_list<std::string> parts) {
  if (status.ok()) return ::testing::AssertionFailure() << "expected an error, got OK";
  if (status.code() != code) {
    return ::testing::AssertionFailure()
           << "expected code " << absl::StatusCodeToString(code) << ", got " << status;
  }
  for (const std::string& part : parts) {
    if (std::string(status.message()).find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << status;
    }
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// An independent walk over a known-good file.

const Entry& Layout::FindEntry(const std::string& key) const {
  for (const Entry& e : entries) {
    if (e.key == key) return e;
  }
  ADD_FAILURE() << "no entry " << key;
  return entries.front();
}

const Info& Layout::FindInfo(const std::string& name) const {
  for (const Info& i : infos) {
    if (i.name == name) return i;
  }
  ADD_FAILURE() << "no tensor " << name;
  return infos.front();
}

namespace {

void SkipValue(const std::string& b, uint32_t type, uint64_t& p, std::vector<uint64_t>& marks) {
  static constexpr uint64_t kScalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (kScalar[type] > 0) {
    p += kScalar[type];
  } else if (type == 8) {
    marks.push_back(p + 8);
    p += 8 + GetU64(b, p);
  } else {
    const uint32_t element_type = GetU32(b, p);
    const uint64_t count = GetU64(b, p + 4);
    marks.push_back(p + 4);
    p += 12;
    for (uint64_t i = 0; i < count; ++i) {
      marks.push_back(p);
      SkipValue(b, element_type, p, marks);
    }
  }
  marks.push_back(p);
}

}  // namespace

Layout Walk(const std::string& b, const std::vector<uint64_t>& tensor_bytes) {
  Layout l;
  l.num_tensors = GetU64(b, 8);
  l.num_entries = GetU64(b, 16);
  l.fields = {
      {0, 4, "magic"}, {4, 8, "version"}, {8, 16, "tensor count"}, {16, 24, "metadata count"}};
  l.boundaries = {0, 4, 8, 16, 24};
  uint64_t p = 24;
  for (uint64_t i = 0; i < l.num_entries; ++i) {
    Entry e;
    e.begin = p;
    e.key = b.substr(p + 8, GetU64(b, p));
    e.key_end = e.type_pos = p + 8 + e.key.size();
    e.value_pos = e.type_pos + 4;
    p = e.value_pos;
    l.boundaries.insert(l.boundaries.end(), {e.begin + 8, e.key_end, e.value_pos});
    SkipValue(b, GetU32(b, e.type_pos), p, l.boundaries);
    e.end = p;
    l.fields.push_back({e.begin, e.key_end, absl::StrCat("metadata entry ", i, " of ")});
    l.fields.push_back({e.key_end, e.end, absl::StrCat("metadata key \"", e.key, "\"")});
    if (e.key == "general.alignment") l.alignment = GetU32(b, e.value_pos);
    l.entries.push_back(e);
  }
  l.infos_begin = p;
  for (uint64_t i = 0; i < l.num_tensors; ++i) {
    Info t;
    t.begin = p;
    t.name = b.substr(p + 8, GetU64(b, p));
    t.name_end = p + 8 + t.name.size();
    t.num_dims = GetU32(b, t.name_end);
    t.dims_pos = t.name_end + 4;
    t.type_pos = t.dims_pos + 8 * t.num_dims;
    t.offset_pos = t.type_pos + 4;
    t.offset = GetU64(b, t.offset_pos);
    t.end = p = t.offset_pos + 8;
    t.num_bytes = tensor_bytes.at(i);
    l.boundaries.insert(l.boundaries.end(),
                        {t.begin + 8, t.name_end, t.dims_pos, t.type_pos, t.offset_pos, t.end});
    for (uint32_t d = 1; d < t.num_dims; ++d) l.boundaries.push_back(t.dims_pos + 8 * d);
    l.fields.push_back({t.begin, t.name_end, absl::StrCat("tensor info ", i, " of ")});
    l.fields.push_back({t.name_end, t.end, absl::StrCat("tensor \"", t.name, "\"")});
    l.infos.push_back(t);
  }
  l.infos_end = p;
  l.data_start = (p + l.alignment - 1) / l.alignment * l.alignment;
  l.boundaries.push_back(l.data_start);
  uint64_t previous_end = l.infos_end;
  for (const Info& t : l.infos) {  // GGUFWriter lays the data out in info order
    const uint64_t end = l.data_start + t.offset + t.num_bytes;
    l.fields.push_back({previous_end, end, absl::StrCat("tensor \"", t.name, "\"")});
    l.boundaries.insert(l.boundaries.end(), {l.data_start + t.offset, end});
    previous_end = end;
  }
  l.data_end = previous_end;
  return l;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const Fixture& LoadFixture(const std::string& name) {
  static auto* cache = new std::map<std::string, Fixture>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second;
  Fixture f;
  f.name = name;
  absl::StatusOr<std::string> bytes = ReadFileToString(FixturePath(name + ".gguf"));
  absl::StatusOr<std::string> text = ReadFileToString(FixturePath(name + ".json"));
  if (!bytes.ok() || !text.ok()) {
    std::fprintf(stderr,
                 "GGUF fixtures missing in %s: run the tests through ctest (setup test "
                 "gguf_fixtures) or tests/data/make_gguf_fixtures.py --out that folder\n",
                 PAGODA_GGUF_FIXTURE_DIR);
    std::exit(1);
  }
  f.bytes = *std::move(bytes);
  f.expected = json::parse(*text);
  std::vector<uint64_t> tensor_bytes;
  for (const json& t : f.expected["tensors"]) {
    tensor_bytes.push_back(t["data_hex"].get<std::string>().size() / 2);
  }
  f.layout = Walk(f.bytes, tensor_bytes);
  return cache->emplace(name, std::move(f)).first->second;
}

std::string InsertEntries(const Fixture& f,
                          const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string inserted;
  for (const auto& [key, type_and_value] : entries) inserted += Str(key) + type_and_value;
  const uint64_t filler = 8 + 8 + 4 + 1;  // length, "test.pad", type, value
  const uint64_t align = f.layout.alignment;
  const uint64_t pad = (align - (inserted.size() + filler) % align) % align;
  inserted += Str("test.pad" + std::string(pad, '_')) + U32(0) + std::string(1, '\0');
  std::string bytes = f.bytes;
  bytes.insert(f.layout.infos_begin, inserted);
  PutU64(bytes, 16, f.layout.num_entries + entries.size() + 1);
  return bytes;
}

}  // namespace pagoda::gguf_testing
