// `pagoda bench compare A.json B.json`: two --result-json files side by side, the figures that
// both have with the ratio B / A, then the settings that tell the runs apart. Per-request arrays
// are left out.
//
//   ASSIGN_OR_RETURN(nlohmann::json a, ReadJsonFile("grpc.json"));
//   ASSIGN_OR_RETURN(nlohmann::json b, ReadJsonFile("http.json"));
//   std::fputs(FormatComparison(a, b, "grpc.json", "http.json").c_str(), stdout);
#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace pagoda {

std::string FormatComparison(const nlohmann::json& a, const nlohmann::json& b,
                             const std::string& name_a, const std::string& name_b);

}  // namespace pagoda
