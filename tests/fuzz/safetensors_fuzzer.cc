// A hostile .safetensors file: the header (JSON, offsets, shapes, dtypes) and the conversion of
// every tensor it declares to fp32.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/formats/safetensors.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pagoda::fuzz::MemoryFile input(data, size);
  absl::StatusOr<std::unique_ptr<pagoda::SafetensorsFile>> file =
      pagoda::SafetensorsFile::Open(input.path());
  if (!file.ok()) return 0;
  (void)(*file)->metadata();
  for (const std::string& name : (*file)->TensorNames()) {
    const pagoda::TensorInfo* tensor = (*file)->Find(name);
    if (tensor == nullptr) __builtin_trap();  // a listed name must be found
    // Open validated that the data lies inside the file, so the element count is bounded by it.
    std::vector<float> out(static_cast<size_t>(tensor->num_elements()));
    (void)pagoda::ConvertToFloat(*tensor, out);
  }
  return 0;
}
