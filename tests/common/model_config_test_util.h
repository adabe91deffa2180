// Helpers shared by the ModelConfig tests (model_config_test.cc, model_config_phi3_test.cc): a
// config parsed from JSON under one source path, and an error check naming what it must say.
//
//   ExpectError(ParseConfig(j), absl::StatusCode::kInvalidArgument, {kConfigSource, "head_dim"});
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda::testing {

/// The path the parsed configs claim to come from; every error must name it.
inline constexpr char kConfigSource[] = "/models/test/config.json";

inline absl::StatusOr<ModelConfig> ParseConfig(const nlohmann::json& config) {
  return ModelConfig::FromJson(config.dump(), kConfigSource);
}

/// `result` failed with `code`, and its message contains each of `substrings`.
inline void ExpectError(const absl::StatusOr<ModelConfig>& result, absl::StatusCode code,
                        const std::vector<std::string>& substrings) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), code) << result.status();
  for (const std::string& s : substrings) {
    EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr(s));
  }
}

}  // namespace pagoda::testing
