// `pagoda generate` as other tools call it: flags in, JSONL out, clear errors.
#include "tools/generate_command.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/smollm2_near_tie.h"
#include "tests/testing/stories260k.h"

namespace pagoda {
namespace {

namespace fs = std::filesystem;
using testing::GoldenCase;
using testing::LoadStories260KGoldens;

class GenerateCommandTest : public ::testing::Test {
 protected:
  // dir_ holds the prompt and output files; the model is the shared converted one.
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("pagoda_generate_cmd_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }
  static const std::string& Model() { return testing::Stories260KDir(); }

  static void WriteFile(const std::string& name, const std::string& text) {
    std::ofstream(Path(name)) << text;
  }

  static int Run(std::vector<std::string> args) {
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return RunGenerateCommand(static_cast<int>(argv.size()), argv.data());
  }

  static std::vector<nlohmann::json> ReadJsonl(const std::string& name) {
    std::vector<nlohmann::json> lines;
    std::ifstream in(Path(name));
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  static fs::path* dir_;
};

fs::path* GenerateCommandTest::dir_ = nullptr;

TEST_F(GenerateCommandTest, PromptsFileGivesOneResultLinePerPromptInOrder) {
  const std::vector<GoldenCase> expected = LoadStories260KGoldens();
  std::string prompts;
  for (const GoldenCase& golden : expected) {
    prompts += nlohmann::json({{"prompt", golden.prompt}}).dump() + "\n";
  }
  // A per-line field overrides the command line.
  prompts += R"({"prompt": "Once upon a time", "max_tokens": 5})"
             "\n";
  WriteFile("prompts.jsonl", prompts);
  ASSERT_EQ(Run({"--model", Model(), "--prompts-file", Path("prompts.jsonl"), "--max-tokens", "64",
                 "--temperature", "0", "--ignore-eos", "--output", Path("out.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("out.jsonl");
  ASSERT_EQ(out.size(), expected.size() + 1);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(out[i]["prompt"], expected[i].prompt);
    EXPECT_EQ(out[i]["prompt_token_ids"].get<std::vector<int32_t>>(), expected[i].prompt_ids);
    EXPECT_EQ(out[i]["token_ids"].get<std::vector<int32_t>>(), expected[i].greedy_ids);
    EXPECT_EQ(out[i]["text"], expected[i].greedy_text);
    EXPECT_EQ(out[i]["finish_reason"], "length");
  }
  const std::vector<int32_t> first5(expected[0].greedy_ids.begin(),
                                    expected[0].greedy_ids.begin() + 5);
  EXPECT_EQ(out.back()["token_ids"].get<std::vector<int32_t>>(), first5);
}

// --dtype and --kv-cache-dtype: bfloat16 weights and KV cache keep stories260K's goldens.
TEST_F(GenerateCommandTest, Bfloat16WeightsAndKvCacheGiveTheGoldens) {
  const std::vector<GoldenCase> expected = LoadStories260KGoldens();
  std::string prompts;
  for (const GoldenCase& golden : expected) {
    prompts += nlohmann::json({{"prompt", golden.prompt}}).dump() + "\n";
  }
  WriteFile("bf16.jsonl", prompts);
  ASSERT_EQ(Run({"--model", Model(), "--prompts-file", Path("bf16.jsonl"), "--max-tokens", "64",
                 "--temperature", "0", "--ignore-eos", "--dtype", "bfloat16", "--kv-cache-dtype",
                 "bfloat16", "--output", Path("bf16_out.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("bf16_out.jsonl");
  ASSERT_EQ(out.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(out[i]["token_ids"].get<std::vector<int32_t>>(), expected[i].greedy_ids) << i;
  }
  EXPECT_EQ(Run({"--model", Model(), "--prompt", "x", "--dtype", "int8"}), 2);
  EXPECT_EQ(Run({"--model", Model(), "--prompt", "x", "--kv-cache-dtype", "float16"}), 2);
}

// --model names a GGUF file: SmolLM2-135M-Instruct (scripts/install-deps.sh fetches it) answers
// its chat prompts with the golden greedy tokens (up to the near-ties of
// tests/testing/smollm2_near_tie.h), tokenized by the file's own tokenizer.
TEST_F(GenerateCommandTest, AGgufModelGeneratesItsGoldens) {
  const std::string gguf = std::string(PAGODA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " is absent (scripts/install-deps.sh)";
  std::vector<nlohmann::json> goldens;
  std::ifstream in(std::string(PAGODA_SHARED_DIR) + "/models/smollm2/golden_greedy.jsonl");
  std::string prompts;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    goldens.push_back(nlohmann::json::parse(line));
    prompts += nlohmann::json({{"prompt", goldens.back()["prompt"]}}).dump() + "\n";
  }
  ASSERT_FALSE(goldens.empty());
  WriteFile("smollm2.jsonl", prompts);
  ASSERT_EQ(Run({"--model", gguf, "--prompts-file", Path("smollm2.jsonl"), "--max-tokens", "48",
                 "--temperature", "0", "--ignore-eos", "--output", Path("smollm2_out.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("smollm2_out.jsonl");
  ASSERT_EQ(out.size(), goldens.size());
  for (size_t i = 0; i < goldens.size(); ++i) {
    EXPECT_EQ(out[i]["prompt_token_ids"], goldens[i]["prompt_ids"]) << i;
    const std::vector<int32_t> got = out[i]["token_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = goldens[i]["greedy_ids"].get<std::vector<int32_t>>();
    const std::vector<double> margin = goldens[i]["top2_margin"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) {
      // A near-tie (tests/testing/smollm2_near_tie.h): another continuation.
      if (got[t] != want[t] && margin[t] < testing::SmolLm2NearTie()) break;
      ASSERT_EQ(got[t], want[t]) << "prompt " << i << " token " << t;
    }
  }
  // A GGUF keeps its own weight types.
  EXPECT_EQ(Run({"--model", gguf, "--prompt", "x", "--dtype", "bfloat16"}), 2);
}

// The quick start's question ("What is 2 + 2?", SmolLM2 Q4_1, greedy) asked three times in a
// run, beside another prompt, with the prefix cache on, in three schedules: one sequence at a
// time (the first copy prefills cold, the later ones find its blocks and prefill only the rest:
// the quick start's repeated request), and token budgets of 23 and 7 (every copy chunked at other
// offsets, sharing steps with other sequences). Every copy of every run answers the same tokens.
// (generate_command_test_one_thread runs it again at OMP_NUM_THREADS=1.)
// Before the kernels were batch-invariant these runs answered "The answer is 4." for some copies
// and "The answer to this classic math problem is 4." for others.
TEST_F(GenerateCommandTest, TheSameGreedyQuestionGetsTheSameAnswerInAnyStepShape) {
  const std::string gguf = std::string(PAGODA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " is absent (scripts/install-deps.sh)";
  std::ifstream in(std::string(PAGODA_SHARED_DIR) + "/models/smollm2/golden_greedy.jsonl");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) prompts.push_back(nlohmann::json::parse(line)["prompt"]);
  }
  ASSERT_GE(prompts.size(), 2u);
  const std::string question = nlohmann::json({{"prompt", prompts[0]}}).dump() + "\n";
  WriteFile("same_question.jsonl", question + nlohmann::json({{"prompt", prompts[1]}}).dump() +
                                       "\n" + question + question);
  nlohmann::json first;
  for (const std::vector<std::string>& schedule : std::vector<std::vector<std::string>>{
           {"--max-num-seqs", "1"},
           {"--max-num-batched-tokens", "23", "--max-num-seqs", "4"},
           {"--max-num-batched-tokens", "7", "--max-num-seqs", "4"}}) {
    const std::string how = schedule[0] + " " + schedule[1];
    std::vector<std::string> args = {"--model",
                                     gguf,
                                     "--prompts-file",
                                     Path("same_question.jsonl"),
                                     "--max-tokens",
                                     "16",
                                     "--temperature",
                                     "0",
                                     "--enable-prefix-caching",
                                     "--output",
                                     Path("same_question_out.jsonl")};
    args.insert(args.end(), schedule.begin(), schedule.end());
    ASSERT_EQ(Run(args), 0) << how;
    const std::vector<nlohmann::json> out = ReadJsonl("same_question_out.jsonl");
    ASSERT_EQ(out.size(), 4u) << how;
    if (first.is_null()) first = out[0];
    EXPECT_FALSE(first["token_ids"].empty());
    for (size_t i : {0, 2, 3}) {
      EXPECT_EQ(out[i]["token_ids"], first["token_ids"]) << how << ", copy " << i;
      EXPECT_EQ(out[i]["text"], first["text"]) << how << ", copy " << i;
    }
  }
}

TEST_F(GenerateCommandTest, LogprobsAreWrittenWhenAskedFor) {
  WriteFile("logprobs.jsonl", R"({"prompt": "The little dog", "logprobs": 2})"
                              "\n");
  ASSERT_EQ(Run({"--model", Model(), "--prompts-file", Path("logprobs.jsonl"), "--max-tokens", "3",
                 "--temperature", "0", "--output", Path("lp.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("lp.jsonl");
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0]["logprobs"].size(), 3u);
  ASSERT_EQ(out[0]["top_logprobs"].size(), 3u);
  // Greedy: the sampled token is the most likely one.
  EXPECT_EQ(out[0]["top_logprobs"][0][0][0], out[0]["token_ids"][0]);
  EXPECT_LE(out[0]["logprobs"][0].get<double>(), 0.0);
}

TEST_F(GenerateCommandTest, DummyWeightsRunForAnyConfig) {
  ASSERT_EQ(Run({"--model", Model(), "--load-format", "dummy", "--prompt", "Hello", "--max-tokens",
                 "4", "--seed", "1", "--ignore-eos", "--output", Path("dummy.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("dummy.jsonl");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["token_ids"].size(), 4u);
}

TEST_F(GenerateCommandTest, SeveralOutputsAreListedWithTheFirstAtTopLevel) {
  ASSERT_EQ(Run({"--model", Model(), "--prompt", "Once upon a time", "--max-tokens", "12", "--n",
                 "3", "--seed", "5", "--ignore-eos", "--num-scheduler-steps", "4",
                 "--enable-prefix-caching", "--output", Path("n3.jsonl")}),
            0);
  const std::vector<nlohmann::json> out = ReadJsonl("n3.jsonl");
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0]["outputs"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out[0]["outputs"][i]["index"], i);
    EXPECT_EQ(out[0]["outputs"][i]["token_ids"].size(), 12u);
    EXPECT_EQ(out[0]["outputs"][i]["finish_reason"], "length");
  }
  EXPECT_EQ(out[0]["token_ids"], out[0]["outputs"][0]["token_ids"]);
  EXPECT_EQ(out[0]["text"], out[0]["outputs"][0]["text"]);
}

TEST_F(GenerateCommandTest, StopStringsEndTheTextAndStaticSchedulingMatchesTheEngine) {
  const std::vector<GoldenCase> goldens = LoadStories260KGoldens();
  ASSERT_FALSE(goldens.empty());
  const GoldenCase& expected = goldens[0];
  const std::string& text = expected.greedy_text;
  // A stop string from the middle of the golden text.
  const std::string stop = text.substr(text.size() / 2, 6);
  WriteFile("one.jsonl", nlohmann::json({{"prompt", expected.prompt}}).dump() + "\n");
  ASSERT_EQ(
      Run({"--model", Model(), "--prompts-file", Path("one.jsonl"), "--max-tokens", "64",
           "--temperature", "0", "--ignore-eos", "--stop", stop, "--output", Path("stop.jsonl")}),
      0);
  const std::vector<nlohmann::json> stopped = ReadJsonl("stop.jsonl");
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0]["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(stopped[0]["finish_reason"], "stop");
  EXPECT_FALSE(stopped[0].contains("outputs"));

  for (const std::string scheduler : {"static", "continuous"}) {
    ASSERT_EQ(Run({"--model", Model(), "--prompts-file", Path("one.jsonl"), "--max-tokens", "64",
                   "--temperature", "0", "--ignore-eos", "--scheduler", scheduler,
                   "--disable-async-output-proc", "--output", Path("s.jsonl")}),
              0);
    const std::vector<nlohmann::json> out = ReadJsonl("s.jsonl");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0]["token_ids"].get<std::vector<int32_t>>(), expected.greedy_ids) << scheduler;
    EXPECT_EQ(out[0]["text"], expected.greedy_text) << scheduler;
  }
  EXPECT_EQ(Run({"--model", Model(), "--prompt", "x", "--scheduler", "waves"}), 2);
  EXPECT_EQ(Run({"--model", Model(), "--prompt", "x", "--scheduler", "static", "--n", "2"}), 2);
  EXPECT_EQ(Run({"--model", Model(), "--prompt", "x", "--preemption-mode", "swap"}), 2);
}

TEST_F(GenerateCommandTest, BadInputIsAnErrorWithExitCodeTwo) {
  WriteFile("bad.jsonl", "{\"prompt\": \"ok\"}\nnot json\n");
  WriteFile("badfield.jsonl", "{\"prompt\": \"ok\", \"temperature\": \"hot\"}\n");
  WriteFile("noprompt.jsonl", "{\"text\": \"ok\"}\n");
  WriteFile("badids.jsonl", "{\"prompt_token_ids\": [1, 99999]}\n");
  WriteFile("typo.jsonl", "{\"prompt\": \"ok\", \"temprature\": 0.5}\n");
  WriteFile("bestof.jsonl", "{\"prompt\": \"ok\", \"best_of\": 3}\n");
  WriteFile("beams.jsonl",
            "{\"prompt\": \"ok\", \"use_beam_search\": true, \"best_of\": 2, "
            "\"max_tokens\": 3}\n");
  const std::string model = Model();
  EXPECT_EQ(Run({"--prompt", "x"}), 2);  // --model missing
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("bad.jsonl")}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("badfield.jsonl")}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("noprompt.jsonl")}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("badids.jsonl")}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("typo.jsonl")}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompts-file", Path("bestof.jsonl")}), 2);
  EXPECT_EQ(
      Run({"--model", model, "--prompts-file", Path("beams.jsonl"), "--output", Path("beams.out")}),
      0);
  EXPECT_EQ(Run({"--model", model, "--prompt", "x", "--max-tokens", "many"}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompt", "x", "--max-tokens", "1000"}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompt", "x", "--load-format", "gguf"}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompt", "x", "--top-p", "0"}), 2);
  EXPECT_EQ(Run({"--model", model, "--prompt", "x", "--no-such-flag"}), 2);
  EXPECT_NE(Run({"--model", Path("missing"), "--prompt", "x"}), 0);
}

}  // namespace
}  // namespace pagoda
