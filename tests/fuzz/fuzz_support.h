// What the fuzz harnesses share: fuzz bytes as a file for the parsers that take a path, and the
// fixed tokenizers and templates a harness runs its input through.
//
//   pagoda::fuzz::MemoryFile file(data, size);  // an anonymous in-memory file, no disk I/O
//   auto parsed = SafetensorsFile::Open(file.path());
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/tokenizer/tokenizer.h"

namespace pagoda::fuzz {

/// The bytes as an anonymous memfd, reachable as /proc/self/fd/N until destruction.
class MemoryFile {
 public:
  MemoryFile(const uint8_t* data, size_t size);
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

/// A tokenizer of tests/data/<name>/ (e.g. "gpt2_tokenizer"), loaded once; aborts if it is
/// missing, since a harness without it would test nothing.
const Tokenizer& TestTokenizer(const std::string& name);

/// tests/data/<relative_path> as text; aborts if it is missing.
std::string ReadTestData(const std::string& relative_path);

}  // namespace pagoda::fuzz
