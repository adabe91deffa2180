// The datasets of `pagoda bench`: jsonl files with errors that name the line, and the seeded
// synthetic datasets made of real text sized with the stories260K tokenizer.
#include "tools/bench/dataset.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "tools/bench/prompt_text.h"
#include "tools/bench/sharegpt_like.h"

namespace pagoda {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DatasetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("pagoda_bench_dataset_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    auto tokenizer = Tokenizer::FromDirectory(testing::Stories260KDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
    auto text = PromptText::Create(tokenizer_);
    ASSERT_TRUE(text.ok()) << text.status();
    text_ = new PromptText(std::move(*text));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete text_;
    delete tokenizer_;
  }

  static std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = (*dir_ / name).string();
    std::ofstream(path) << contents;
    return path;
  }

  // The error of reading `contents` as a jsonl dataset (with the tokenizer, context 512).
  static absl::Status JsonlError(const std::string& contents) {
    const std::string path = Write("data.jsonl", contents);
    return ReadJsonlDataset(path, 0, tokenizer_, 512).status();
  }

  static absl::StatusOr<std::vector<BenchRequest>> Make(const DatasetOptions& options) {
    return MakeDataset(options, text_, tokenizer_);
  }

  static fs::path* dir_;
  static Tokenizer* tokenizer_;
  static PromptText* text_;
};

fs::path* DatasetTest::dir_ = nullptr;
Tokenizer* DatasetTest::tokenizer_ = nullptr;
PromptText* DatasetTest::text_ = nullptr;

TEST_F(DatasetTest, JsonlReadsPromptsAndEitherLengthField) {
  const std::string path = Write("ok.jsonl",
                                 "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8}\n"
                                 "\n"
                                 "{\"prompt\": \"Lily went to the park\", \"output_len\": 16}\n");
  auto requests = ReadJsonlDataset(path, 0, tokenizer_, 512);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 2u);
  EXPECT_EQ((*requests)[0].prompt, "Once upon a time");
  EXPECT_EQ((*requests)[0].output_len, 8);
  EXPECT_EQ((*requests)[0].prompt_token_ids, tokenizer_->Encode("Once upon a time"));
  EXPECT_EQ((*requests)[0].prompt_len,
            static_cast<int64_t>((*requests)[0].prompt_token_ids.size()));
  EXPECT_EQ((*requests)[1].output_len, 16);

  auto first = ReadJsonlDataset(path, 1, tokenizer_, 512);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->size(), 1u);
  // Without a tokenizer the text is all there is.
  auto untokenized = ReadJsonlDataset(path, 0, nullptr, 0);
  ASSERT_TRUE(untokenized.ok());
  EXPECT_TRUE((*untokenized)[0].prompt_token_ids.empty());
}

TEST_F(DatasetTest, JsonlErrorsNameTheLine) {
  const struct {
    std::string contents;
    std::string expected;
  } cases[] = {
      {"{\"prompt\": \"a\", \"max_tokens\": 4}\n{\"prompt\": \"b\", \"max_tokens\": 4\n",
       "data.jsonl:2: not valid JSON"},
      {"[1, 2]\n", "data.jsonl:1: not a JSON object"},
      {"\n{\"max_tokens\": 4}\n", "data.jsonl:2: needs \"prompt\" (a string)"},
      {"{\"prompt\": 5, \"max_tokens\": 4}\n", "data.jsonl:1: needs \"prompt\" (a string)"},
      {"{\"prompt\": \"\", \"max_tokens\": 4}\n", "data.jsonl:1: empty prompt"},
      {"{\"prompt\": \"a\", \"max_tokens\": 4}\n{\"prompt\": \"b\", \"max_tokens\": -3}\n",
       "data.jsonl:2: \"max_tokens\" must be a positive integer, got -3"},
      {"{\"prompt\": \"a\", \"output_len\": \"ten\"}\n",
       "data.jsonl:1: \"output_len\" must be a positive integer, got \"ten\""},
      {"{\"prompt\": \"a\"}\n", "data.jsonl:1: needs \"max_tokens\" or \"output_len\""},
      {"{\"prompt\": \"a\", \"max_tokens\": 4, \"output_len\": 4}\n",
       "data.jsonl:1: give one of \"max_tokens\" and \"output_len\", not both"},
      {"{\"prompt\": \"a\", \"max_tokens\": 600}\n",
       "data.jsonl:1: the prompt's 2 tokens + 600 output tokens exceed the model's context of 512"},
      {"", "data.jsonl: no requests (the file is empty)"},
      {"\n  \n", "data.jsonl: no requests (the file is empty)"},
  };
  for (const auto& c : cases) {
    const absl::Status status = JsonlError(c.contents);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.contents;
    EXPECT_THAT(status.message(), HasSubstr(c.expected)) << c.contents;
  }
}

TEST_F(DatasetTest, JsonlMissingFileAndTooFewLines) {
  const absl::Status missing =
      ReadJsonlDataset((*dir_ / "nope.jsonl").string(), 0, nullptr, 0).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("nope.jsonl: cannot open"));

  const std::string path = Write("two.jsonl",
                                 "{\"prompt\": \"a\", \"max_tokens\": 1}\n"
                                 "{\"prompt\": \"b\", \"max_tokens\": 1}\n");
  const absl::Status few = ReadJsonlDataset(path, 3, nullptr, 0).status();
  EXPECT_EQ(few.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(few.message(), HasSubstr("--num-prompts is 3 but"));
}

TEST_F(DatasetTest, PromptTextHitsTheTokenCountWithRealText) {
  for (const int64_t n : {2, 5, 17, 100, 333, 1000}) {
    for (const uint64_t offset : {0ull, 12345ull, 987654321ull}) {
      const PromptText::Prompt p = text_->Make(offset, n);
      EXPECT_FALSE(p.text.empty());
      EXPECT_EQ(p.token_ids, tokenizer_->Encode(p.text));
      EXPECT_NEAR(static_cast<double>(p.token_ids.size()), static_cast<double>(n), 1.0)
          << "offset " << offset << ": " << p.text;
    }
  }
  // Real words, not random ids.
  EXPECT_THAT(text_->Make(0, 40).text, HasSubstr("Once upon a time"));
}

TEST_F(DatasetTest, RandomLengthsStayInTheirRangeAndAreSeeded) {
  const DatasetOptions options{.kind = DatasetKind::kRandom,
                               .num_prompts = 50,
                               .seed = 5,
                               .max_model_len = 512,
                               .random_input_len = 100,
                               .random_output_len = 40,
                               .random_range_ratio = 0.5};
  auto requests = Make(options);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 50u);
  std::set<int64_t> lengths;
  for (const BenchRequest& r : *requests) {
    EXPECT_GE(r.prompt_len, 50 - 1);
    EXPECT_LE(r.prompt_len, 150 + 1);
    EXPECT_GE(r.output_len, 20);
    EXPECT_LE(r.output_len, 60);
    EXPECT_EQ(r.prompt_token_ids, tokenizer_->Encode(r.prompt));
    lengths.insert(r.prompt_len);
  }
  EXPECT_GT(lengths.size(), 10u);  // spread over the range

  auto again = Make(options);
  ASSERT_TRUE(again.ok());
  DatasetOptions other = options;
  other.seed = 6;
  auto different = Make(other);
  ASSERT_TRUE(different.ok());
  for (size_t i = 0; i < requests->size(); ++i) {
    EXPECT_EQ((*requests)[i].prompt, (*again)[i].prompt);
  }
  EXPECT_NE((*requests)[0].prompt, (*different)[0].prompt);
}

TEST_F(DatasetTest, RandomBeyondTheContextNamesTheFlags) {
  const absl::Status status = Make({.kind = DatasetKind::kRandom,
                                    .num_prompts = 1,
                                    .max_model_len = 512,
                                    .random_input_len = 400,
                                    .random_output_len = 200})
                                  .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("--random-input-len + --random-output-len"));
}

TEST_F(DatasetTest, ShareGptLikeFitsTheContext) {
  auto requests = Make(
      {.kind = DatasetKind::kShareGptLike, .num_prompts = 300, .seed = 1, .max_model_len = 512});
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 300u);
  for (const BenchRequest& r : *requests) {
    EXPECT_LE(r.prompt_len + r.output_len, 512);
    EXPECT_GE(r.output_len, 1);
  }
}

// The generator moved from benchmarks/ to tools/bench/: the engine benchmarks' workload (and the
// figures docs/performance.md reports for it) must not change.
TEST(ShareGptLikeWorkload, KeepsTheDocumentedShape) {
  const ShareGptLikeWorkload workload({.seed = 1});
  const std::vector<SyntheticRequest> requests = workload.Sample(1000);
  double prompt = 0, output = 0;
  for (const SyntheticRequest& r : requests) {
    prompt += static_cast<double>(r.prompt_token_ids.size());
    output += r.output_len;
  }
  EXPECT_NEAR(prompt / 1000, 195.1, 0.05);
  EXPECT_NEAR(output / 1000, 184.2, 0.05);

  // Lengths alone: the same distribution (its own draws), the same bounds and means near 200/180.
  double lengths_prompt = 0, lengths_output = 0;
  for (const SyntheticLengths& l : workload.SampleLengths(5000)) {
    EXPECT_GE(l.prompt_len, 4);
    EXPECT_LE(l.prompt_len, 1024);
    EXPECT_LE(l.prompt_len + l.output_len, 2048);
    lengths_prompt += static_cast<double>(l.prompt_len);
    lengths_output += static_cast<double>(l.output_len);
  }
  EXPECT_NEAR(lengths_prompt / 5000, 200, 15);
  EXPECT_NEAR(lengths_output / 5000, 180, 15);
}

TEST_F(DatasetTest, PrefixRequestsShareTheirSystemPromptExactly) {
  auto requests = Make({.kind = DatasetKind::kPrefix,
                        .num_prompts = 40,
                        .seed = 3,
                        .max_model_len = 512,
                        .prefix_num_prompts = 4,
                        .prefix_len = 64,
                        .suffix_len = 32,
                        .prefix_output_len = 16});
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 40u);
  std::map<std::vector<int32_t>, int> heads;  // the first 60 tokens of every prompt
  for (const BenchRequest& r : *requests) {
    ASSERT_GE(r.prompt_len, 90);
    EXPECT_LE(r.prompt_len, 100);
    EXPECT_EQ(r.output_len, 16);
    ++heads[std::vector<int32_t>(r.prompt_token_ids.begin(), r.prompt_token_ids.begin() + 60)];
  }
  ASSERT_EQ(heads.size(), 4u);                                   // four system prompts ...
  for (const auto& [head, count] : heads) EXPECT_EQ(count, 10);  // ... ten requests each
  std::set<std::string> prompts;
  for (const BenchRequest& r : *requests) prompts.insert(r.prompt);
  EXPECT_EQ(prompts.size(), 40u);  // unique suffixes
}

TEST_F(DatasetTest, SyntheticDatasetsNeedATokenizer) {
  const absl::Status status =
      MakeDataset({.kind = DatasetKind::kRandom, .num_prompts = 1}, nullptr, nullptr).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("needs a tokenizer"));
}

TEST(DatasetKind, ParsesTheFourNames) {
  EXPECT_EQ(*ParseDatasetKind("sharegpt-like"), DatasetKind::kShareGptLike);
  EXPECT_EQ(*ParseDatasetKind("random"), DatasetKind::kRandom);
  EXPECT_EQ(*ParseDatasetKind("prefix"), DatasetKind::kPrefix);
  EXPECT_EQ(*ParseDatasetKind("jsonl"), DatasetKind::kJsonl);
  const absl::Status bad = ParseDatasetKind("sharegpt").status();
  EXPECT_THAT(bad.message(), HasSubstr("--dataset-name"));
}

}  // namespace
}  // namespace pagoda
