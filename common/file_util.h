// Reading files: whole-file reads for small text files (JSON configs, tokenizers) and read-only
// memory maps for large binary files (safetensors, llama2.c checkpoints).
//
//   ASSIGN_OR_RETURN(std::string text, ReadFileToString(dir + "/config.json"));
//   ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
//   std::span<const std::byte> bytes = file.bytes();
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace pagoda {

/// Reads a whole file. Errors name the path and the OS error.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

/// Writes `contents` to `path` atomically (temporary file in the same folder, then rename).
absl::Status WriteStringToFile(const std::string& path, std::string_view contents);

/// A read-only memory map of a whole file; move-only, unmapped on destruction.
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void Reset();

  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pagoda
