#include "tests/fuzz/fuzz_support.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "common/file_util.h"

namespace pagoda::fuzz {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz harness set-up failed: %s\n", what.c_str());
  std::abort();
}

}  // namespace

MemoryFile::MemoryFile(const uint8_t* data, size_t size) {
  fd_ = memfd_create("pagoda-fuzz-input", MFD_CLOEXEC);
  if (fd_ < 0) Die("memfd_create");
  for (size_t written = 0; written < size;) {
    const ssize_t n = write(fd_, data + written, size - written);
    if (n <= 0) Die("write to memfd");
    written += static_cast<size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemoryFile::~MemoryFile() { close(fd_); }

const Tokenizer& TestTokenizer(const std::string& name) {
  static std::mutex mu;
  static auto* tokenizers = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<Tokenizer>& slot = (*tokenizers)[name];
  if (slot == nullptr) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded =
        Tokenizer::FromDirectory(std::string(PAGODA_TEST_DATA_DIR) + "/" + name);
    if (!loaded.ok()) Die(loaded.status().ToString());
    slot = std::move(*loaded);
  }
  return *slot;
}

std::string ReadTestData(const std::string& relative_path) {
  absl::StatusOr<std::string> text =
      ReadFileToString(std::string(PAGODA_TEST_DATA_DIR) + "/" + relative_path);
  if (!text.ok()) Die(text.status().ToString());
  return *text;
}

}  // namespace pagoda::fuzz
