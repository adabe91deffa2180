// The model definitions Pagoda has, by Hugging Face architecture name (config.json's
// "architectures", or what ModelConfigFromGguf maps a GGUF architecture to). Adding an
// architecture is adding its definition file and a row here.
//
//   ASSIGN_OR_RETURN(const ModelArchitecture* arch, FindModelArchitecture(config.architecture));
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "worker/models/model.h"

namespace pagoda {

/// The definition of `architecture` (e.g. "LlamaForCausalLM"); Unimplemented naming it and the
/// supported ones when there is none.
absl::StatusOr<const ModelArchitecture*> FindModelArchitecture(std::string_view architecture);

}  // namespace pagoda
