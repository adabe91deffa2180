#include "common/arg_parser.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Status Parse(ArgParser& parser, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parser.Parse(static_cast<int>(argv.size()), argv.data());
}

TEST(ArgParser, ValuesComeInBothFormsAndErrorsNameTheFlag) {
  ArgParser parser("prog", "A program.");
  std::string name;
  int64_t count = 3;
  double ratio = 0.5;
  parser.AddString("name", &name, "A name");
  parser.AddInt("count", &count, "A count");
  parser.AddDouble("ratio", &ratio, "A ratio");
  ASSERT_TRUE(Parse(parser, {"--name", "x", "--count=7"}).ok());
  EXPECT_EQ(name, "x");
  EXPECT_EQ(count, 7);
  EXPECT_EQ(ratio, 0.5);
  EXPECT_TRUE(parser.WasSet("count"));
  EXPECT_FALSE(parser.WasSet("ratio"));

  const absl::Status bad = Parse(parser, {"--count", "many"});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("--count expects an integer"));
  EXPECT_THAT(Parse(parser, {"--nope"}).message(), HasSubstr("unknown flag --nope"));
}

TEST(ArgParser, BoolPairSetsAndClearsAndTheLastOneWins) {
  ArgParser parser("prog", "A program.");
  bool caching = true;
  parser.AddBoolPair("enable-caching", &caching, "Cache things");
  ASSERT_TRUE(Parse(parser, {"--no-enable-caching"}).ok());
  EXPECT_FALSE(caching);
  EXPECT_TRUE(parser.WasSet("no-enable-caching"));
  EXPECT_FALSE(parser.WasSet("enable-caching"));
  ASSERT_TRUE(Parse(parser, {"--no-enable-caching", "--enable-caching"}).ok());
  EXPECT_TRUE(caching);
  EXPECT_THAT(Parse(parser, {"--enable-caching=1"}).message(), HasSubstr("takes no value"));

  const std::string usage = parser.Usage();
  EXPECT_THAT(usage, HasSubstr("--enable-caching"));
  EXPECT_THAT(usage, HasSubstr("[default: on]"));
  EXPECT_THAT(usage, HasSubstr("--no-enable-caching"));
}

TEST(ArgParser, DeprecatedAliasActsAsTheFlagAndWarnsWithItsName) {
  ArgParser parser("prog", "A program.");
  int64_t blocks = 0;
  bool caching = true;
  parser.AddInt("num-blocks", &blocks, "Blocks");
  parser.AddBoolPair("enable-caching", &caching, "Cache things");
  parser.AddDeprecatedAlias("block-count", "num-blocks");
  parser.AddDeprecatedAlias("disable-caching", "no-enable-caching");

  ASSERT_TRUE(Parse(parser, {"--block-count=12", "--disable-caching"}).ok());
  EXPECT_EQ(blocks, 12);
  EXPECT_FALSE(caching);
  EXPECT_TRUE(parser.WasSet("num-blocks"));
  EXPECT_TRUE(parser.WasSet("no-enable-caching"));
  ASSERT_EQ(parser.warnings().size(), 2u);
  EXPECT_THAT(parser.warnings()[0], HasSubstr("--block-count is deprecated"));
  EXPECT_THAT(parser.warnings()[0], HasSubstr("use --num-blocks"));
  EXPECT_THAT(parser.warnings()[1], HasSubstr("use --no-enable-caching"));

  // The new spelling warns about nothing; errors name the new flag.
  ASSERT_TRUE(Parse(parser, {"--num-blocks", "3"}).ok());
  EXPECT_THAT(parser.warnings(), ElementsAre());
  EXPECT_THAT(Parse(parser, {"--block-count", "x"}).message(),
              HasSubstr("--num-blocks expects an integer"));

  // --help lists the old spelling apart, not as a flag line of its own.
  const std::string usage = parser.Usage();
  EXPECT_THAT(usage, HasSubstr("instead of --block-count use --num-blocks"));
  EXPECT_THAT(usage, Not(HasSubstr("\n  --block-count")));
}

TEST(ArgParser, RequiredFlagsAndPositionalsMustBeGiven) {
  for (const auto& [args, expected] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"in.txt"}, "--model is required"}, {{"--model", "m"}, "missing argument <input>"}}) {
    ArgParser parser("prog", "A program.");
    std::string model, input;
    parser.AddString("model", &model, "Model", /*required=*/true);
    parser.AddPositional("input", &input, "Input file");
    EXPECT_THAT(Parse(parser, args).message(), HasSubstr(expected));
  }
  ArgParser parser("prog", "A program.");
  std::string model, input;
  parser.AddString("model", &model, "Model", /*required=*/true);
  parser.AddPositional("input", &input, "Input file");
  ASSERT_TRUE(Parse(parser, {"--model", "m", "in.txt"}).ok());
  EXPECT_EQ(input, "in.txt");
}

}  // namespace
}  // namespace pagoda
