#include "common/dtype.h"

#include <array>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace pagoda {
namespace {

// Block layouts as GGML defines them (QK_K = 256 for the K-quants).
constexpr std::array<DTypeTraits, kNumDTypes> kTraits = {{
    {DType::kF32, "float32", "f32", 0, 1, 4, false},
    {DType::kF16, "float16", "f16", 1, 1, 2, false},
    {DType::kBF16, "bfloat16", "bf16", 30, 1, 2, false},
    {DType::kQ8_0, "q8_0", "q8_0", 8, 32, 2 + 32, true},
    {DType::kQ4_0, "q4_0", "q4_0", 2, 32, 2 + 16, true},
    {DType::kQ4_1, "q4_1", "q4_1", 3, 32, 2 + 2 + 16, true},
    {DType::kQ5_0, "q5_0", "q5_0", 6, 32, 2 + 4 + 16, true},
    {DType::kQ5_1, "q5_1", "q5_1", 7, 32, 2 + 2 + 4 + 16, true},
    {DType::kQ2_K, "q2_K", "q2_K", 10, 256, 2 + 2 + 256 / 16 + 256 / 4, true},
    {DType::kQ3_K, "q3_K", "q3_K", 11, 256, 2 + 256 / 4 + 256 / 8 + 12, true},
    {DType::kQ4_K, "q4_K", "q4_K", 12, 256, 2 + 2 + 256 / 2 + 12, true},
    {DType::kQ5_K, "q5_K", "q5_K", 13, 256, 2 + 2 + 256 / 2 + 256 / 8 + 12, true},
    {DType::kQ6_K, "q6_K", "q6_K", 14, 256, 2 + 256 / 2 + 256 / 4 + 256 / 16, true},
}};

constexpr bool RowsInEnumOrder() {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (static_cast<int>(kTraits[i].dtype) != i) return false;
  }
  return true;
}
static_assert(RowsInEnumOrder(), "kTraits rows must follow the DType enum");

}  // namespace

const DTypeTraits& Traits(DType dtype) { return kTraits[static_cast<int>(dtype)]; }

std::string_view DTypeName(DType dtype) { return Traits(dtype).name; }

std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type) {
  for (const DTypeTraits& t : kTraits) {
    if (t.ggml_type == ggml_type) return t.dtype;
  }
  return std::nullopt;
}

std::string_view GgmlTypeName(uint32_t ggml_type) {
  static constexpr std::array<std::string_view, 42> kNames = {
      "f32",   "f16",        "q4_0",       "q4_1",       "q4_2",     "q4_3",     "q5_0",
      "q5_1",  "q8_0",       "q8_1",       "q2_K",       "q3_K",     "q4_K",     "q5_K",
      "q6_K",  "q8_K",       "iq2_xxs",    "iq2_xs",     "iq3_xxs",  "iq1_s",    "iq4_nl",
      "iq3_s", "iq2_s",      "iq4_xs",     "i8",         "i16",      "i32",      "i64",
      "f64",   "iq1_m",      "bf16",       "q4_0_4_4",   "q4_0_4_8", "q4_0_8_8", "tq1_0",
      "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4",    "nvfp4",    "q1_0"};
  return ggml_type < kNames.size() ? kNames[ggml_type] : std::string_view("unknown");
}

absl::StatusOr<int64_t> RowBytes(DType dtype, int64_t num_elements) {
  const DTypeTraits& t = Traits(dtype);
  if (num_elements < 0 || num_elements % t.block_elements != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(num_elements, " elements of ", std::string(t.name),
                     " are not a whole number of ", t.block_elements, "-element blocks"));
  }
  const int64_t blocks = num_elements / t.block_elements;
  if (blocks > std::numeric_limits<int64_t>::max() / t.block_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(num_elements, " elements of ", std::string(t.name), " overflow a byte count"));
  }
  return blocks * t.block_bytes;
}

}  // namespace pagoda
