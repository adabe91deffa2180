// Checks StopChecker: stop strings across token boundaries with hold-back, stop tokens, EOS,
// min_tokens, length limits; and, with the real stories260K tokenizer, the detokenizer + checker
// pipeline on characters split over byte tokens.
#include "engine/stop_checker.h"

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/llama2c_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/unicode_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;

constexpr int32_t kEos = 2;
constexpr int32_t kText = 100;  // any token id that stops nothing

StopConfig Strings(std::vector<std::string> stop, bool include = false) {
  StopConfig config;
  config.stop_strings = std::move(stop);
  config.include_stop_str_in_output = include;
  config.eos_token_id = kEos;
  config.max_tokens = 1000;
  return config;
}

// Feeds one delta per token; returns what was emitted per call.
struct Streamed {
  std::vector<std::string> emitted;
  std::string text;
  std::optional<FinishReason> finish_reason;
  StopReason stop_reason;
};

Streamed Feed(StopChecker& checker, const std::vector<std::string>& deltas) {
  Streamed run;
  int64_t n = 0;
  for (const std::string& delta : deltas) {
    ++n;
    StopResult r = checker.Append(delta, kText, n, 10 + n);
    run.emitted.push_back(r.emit_now);
    run.text += r.emit_now;
    if (r.finish_reason.has_value()) {
      run.finish_reason = r.finish_reason;
      run.stop_reason = r.stop_reason;
      break;
    }
  }
  return run;
}

TEST(FinishReason, HasTheOpenAiNames) {
  EXPECT_EQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kAbort), "abort");
}

TEST(StopChecker, StopStringSplitAcrossThreeTokensIsCutAndNeverShown) {
  StopChecker checker(Strings({"STOP"}));
  const Streamed run = Feed(checker, {"abc S", "T", "O", "P and more", "never"});
  EXPECT_THAT(run.emitted, ElementsAre("abc ", "", "", ""));
  EXPECT_EQ(run.text, "abc ");
  EXPECT_EQ(run.finish_reason, FinishReason::kStop);
  EXPECT_EQ(run.stop_reason, StopReason(std::string("STOP")));
  EXPECT_TRUE(checker.finished());
  EXPECT_EQ(checker.Append("late", kText, 9, 19).emit_now, "");
  EXPECT_EQ(checker.Flush(), "");
}

TEST(StopChecker, StopStringAtTheVeryStart) {
  StopChecker checker(Strings({"\n\n"}));
  const Streamed run = Feed(checker, {"\n\nHello"});
  EXPECT_THAT(run.emitted, ElementsAre(""));
  EXPECT_EQ(run.finish_reason, FinishReason::kStop);
  EXPECT_EQ(run.stop_reason, StopReason(std::string("\n\n")));
}

TEST(StopChecker, TheStopStringCompletingFirstWinsWhateverTheListOrder) {
  // One is a prefix of the other: the shorter completes first.
  for (auto stops :
       {std::vector<std::string>{"abc", "ab"}, std::vector<std::string>{"ab", "abc"}}) {
    StopChecker checker(Strings(stops));
    const Streamed run = Feed(checker, {"xxabc"});
    EXPECT_EQ(run.text, "xx");
    EXPECT_EQ(run.stop_reason, StopReason(std::string("ab")));
  }
  // Both end at the same byte: the one starting earlier in the text wins.
  for (auto stops :
       {std::vector<std::string>{"end", "the end"}, std::vector<std::string>{"the end", "end"}}) {
    StopChecker checker(Strings(stops));
    const Streamed run = Feed(checker, {"It was the", " end."});
    EXPECT_EQ(run.text, "It was ");
    EXPECT_EQ(run.stop_reason, StopReason(std::string("the end")));
  }
  // Earliest in the text, not first in the list.
  StopChecker checker(Strings({"zzz", "y"}));
  EXPECT_EQ(Feed(checker, {"a y b zzz"}).text, "a ");
}

TEST(StopChecker, HeldBackPartialMatchIsReleasedWhenItIsNoStop) {
  StopChecker checker(Strings({"STOP"}));
  const Streamed run = Feed(checker, {"hello S", "T", "ar", " ST", "OOP"});
  EXPECT_THAT(run.emitted, ElementsAre("hello ", "", "STar", " ", "STOOP"));
  EXPECT_FALSE(run.finish_reason.has_value());
  EXPECT_EQ(checker.num_held_bytes(), 0u);
}

TEST(StopChecker, HoldsOnlyTheLongestPossibleStart) {
  StopChecker checker(Strings({"aab"}));
  const Streamed run = Feed(checker, {"aaa", "a", "b"});
  EXPECT_THAT(run.emitted, ElementsAre("a", "a", ""));
  EXPECT_EQ(run.text, "aa");
  EXPECT_EQ(run.finish_reason, FinishReason::kStop);
}

TEST(StopChecker, FlushReleasesHeldTextOnAbort) {
  StopChecker checker(Strings({"User:"}));
  EXPECT_EQ(Feed(checker, {"Answer. Use"}).text, "Answer. ");
  EXPECT_EQ(checker.num_held_bytes(), 3u);
  EXPECT_EQ(checker.Flush(), "Use");
  EXPECT_TRUE(checker.finished());
}

TEST(StopChecker, IncludeStopStrInOutputKeepsTheStopStringOnly) {
  StopChecker checker(Strings({"STOP"}, /*include=*/true));
  const Streamed run = Feed(checker, {"abc ST", "OP tail"});
  EXPECT_EQ(run.text, "abc STOP");
  EXPECT_EQ(run.finish_reason, FinishReason::kStop);
}

TEST(StopChecker, MultiByteCharactersSharingALeadByteAreNeverHeldOrCutHalfway) {
  // "é" (C3 A9) and "ü" (C3 BC) share their first byte.
  StopChecker checker(Strings({"über"}));
  const Streamed run = Feed(checker, {"caf\xC3\xA9", " \xC3\xBC", "b", "el", " \xC3\xBC", "ber"});
  for (const std::string& piece : run.emitted) EXPECT_TRUE(IsValidUtf8(piece)) << piece;
  EXPECT_THAT(run.emitted, ElementsAre("café", " ", "", "übel", " ", ""));
  EXPECT_EQ(run.text, "café übel ");
}

TEST(StopChecker, MinTokensSuppressesStopStringsAndStopTokens) {
  StopConfig config = Strings({"x"});
  config.stop_token_ids = {7};
  config.min_tokens = 3;
  StopChecker checker(config);
  StopResult r = checker.Append("x", kText, 1, 11);
  EXPECT_EQ(r.emit_now, "x");
  EXPECT_FALSE(r.finish_reason.has_value());
  EXPECT_FALSE(checker.Append("", kEos, 2, 12).finish_reason.has_value());
  r = checker.Append("<7>", 7, 2, 12);
  EXPECT_FALSE(r.finish_reason.has_value());
  EXPECT_EQ(r.emit_now, "<7>");
  r = checker.Append("ax", kText, 3, 13);
  EXPECT_EQ(r.emit_now, "a");
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
}

TEST(StopChecker, StopStringStraddlingMinTokensFiresOnceAllowed) {
  StopConfig config = Strings({"STOP"});
  config.min_tokens = 2;
  StopChecker checker(config);
  EXPECT_EQ(checker.Append("a STOP ST", kText, 1, 11).emit_now, "a STOP ");
  StopResult r = checker.Append("OP", kText, 2, 12);
  EXPECT_EQ(r.emit_now, "");
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
}

TEST(StopChecker, EosStopsWithoutItsTextUnlessIgnored) {
  StopChecker checker(Strings({"STOP"}));
  EXPECT_EQ(checker.Append("hi S", kText, 1, 11).emit_now, "hi ");
  StopResult r = checker.Append("</s>", kEos, 2, 12);
  EXPECT_EQ(r.emit_now, "S");  // the held text was no stop string after all
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
  EXPECT_EQ(r.stop_reason, StopReason());

  StopConfig ignore = Strings({});
  ignore.ignore_eos = true;
  StopChecker ignoring(ignore);
  r = ignoring.Append("", kEos, 1, 11);
  EXPECT_FALSE(r.finish_reason.has_value());
}

TEST(StopChecker, StopTokenIdsReportTheTokenAndIncludeItsTextWhenAsked) {
  StopConfig config = Strings({});
  config.stop_token_ids = {42};
  config.ignore_eos = true;  // stop_token_ids still apply
  StopChecker checker(config);
  StopResult r = checker.Append("<|im_end|>", 42, 1, 11);
  EXPECT_EQ(r.emit_now, "");
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
  EXPECT_EQ(r.stop_reason, StopReason(42));

  config.include_stop_str_in_output = true;
  StopChecker including(config);
  EXPECT_EQ(including.Append("<|im_end|>", 42, 1, 11).emit_now, "<|im_end|>");
}

TEST(StopChecker, MaxTokensAndMaxModelLenFinishWithLength) {
  StopConfig config = Strings({"STOP"});
  config.max_tokens = 2;
  StopChecker checker(config);
  EXPECT_EQ(checker.Append("a S", kText, 1, 11).emit_now, "a ");
  StopResult r = checker.Append("T", kText, 2, 12);
  EXPECT_EQ(r.emit_now, "ST");  // the unfinished stop string is released at the end
  EXPECT_EQ(r.finish_reason, FinishReason::kLength);
  EXPECT_EQ(r.stop_reason, StopReason());

  config.max_tokens = 100;
  config.max_model_len = 12;
  StopChecker limited(config);
  EXPECT_FALSE(limited.Append("a", kText, 1, 11).finish_reason.has_value());
  EXPECT_EQ(limited.Append("b", kText, 2, 12).finish_reason, FinishReason::kLength);
}

TEST(StopChecker, AStopOnTheLastAllowedTokenBeatsLength) {
  StopConfig config = Strings({"STOP"});
  config.max_tokens = 1;
  StopChecker checker(config);
  StopResult r = checker.Append("ok STOP", kText, 1, 11);
  EXPECT_EQ(r.emit_now, "ok ");
  EXPECT_EQ(r.finish_reason, FinishReason::kStop);
}

TEST(StopChecker, FromSamplingParamsCopiesTheStoppingFields) {
  SamplingParams params;
  params.stop = {"a", "bc"};
  params.include_stop_str_in_output = true;
  params.stop_token_ids = {5};
  params.ignore_eos = true;
  params.min_tokens = 2;
  params.max_tokens = 9;
  const StopConfig config = StopConfig::FromSamplingParams(params, 2, 512);
  EXPECT_THAT(config.stop_strings, ElementsAre("a", "bc"));
  EXPECT_TRUE(config.include_stop_str_in_output);
  EXPECT_THAT(config.stop_token_ids, ElementsAre(5));
  EXPECT_EQ(config.eos_token_id, 2);
  EXPECT_TRUE(config.ignore_eos);
  EXPECT_EQ(config.min_tokens, 2);
  EXPECT_EQ(config.max_tokens, 9);
  EXPECT_EQ(config.max_model_len, 512);
}

// Brute force on the whole text: the stop string whose match ends first (then starts first);
// nullopt when none matches.
std::optional<std::string> ReferenceCut(const std::string& text,
                                        const std::vector<std::string>& stops) {
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  for (const std::string& stop : stops) {
    for (size_t start = text.find(stop); start != std::string::npos;
         start = text.find(stop, start + 1)) {
      const size_t end = start + stop.size();
      if (end < best_end || (end == best_end && start < best_start)) {
        best_end = end;
        best_start = start;
      }
    }
  }
  if (best_end == std::string::npos) return std::nullopt;
  return text.substr(0, best_start);
}

TEST(StopChecker, OutcomeDoesNotDependOnHowTheTextIsSplit) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    auto random_string = [&](size_t min_len, size_t max_len) {
      std::string s(min_len + rng() % (max_len - min_len + 1), 'a');
      for (char& c : s) c = "abc"[rng() % 3];
      return s;
    };
    std::vector<std::string> stops(1 + rng() % 3);
    for (std::string& stop : stops) stop = random_string(1, 4);
    const std::string text = random_string(0, 30);
    std::vector<std::string> deltas;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min<size_t>(rng() % 4, text.size() - i);  // empty deltas too
      deltas.push_back(text.substr(i, n));
      i += n;
    }
    StopChecker checker(Strings(stops));
    Streamed run = Feed(checker, deltas);
    if (!run.finish_reason.has_value()) run.text += checker.Flush();
    SCOPED_TRACE(::testing::Message() << "text " << text << " stop " << stops[0]);
    const std::optional<std::string> cut = ReferenceCut(text, stops);
    EXPECT_EQ(run.text, cut.value_or(text));
    EXPECT_EQ(run.finish_reason.has_value(), cut.has_value());
  }
}

std::unique_ptr<Tokenizer> LoadStories() {
  auto vocab =
      ReadLlama2cTokenizer(std::string(PAGODA_SHARED_DIR) + "/models/stories260K/tok512.bin", 512);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  if (!vocab.ok()) return nullptr;
  auto files = ConvertLlama2cTokenizer(*vocab, 512);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return nullptr;
  auto tokenizer =
      Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json, "stories260K");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

TEST(StopChecker, WithTheDetokenizerSplitCharactersAreNeverShownHalfway) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  // "猫" and "好" fall back to three byte tokens each; the stop string spans both.
  const std::vector<int32_t> prompt = tok->Encode("Lily said", true);
  const std::vector<int32_t> full = tok->Encode("Lily said 你好 猫好 end", true);
  const std::vector<int32_t> output(full.begin() + prompt.size(), full.end());
  SamplingParams params;
  params.stop = {"猫好"};
  params.max_tokens = 100;
  StopChecker checker(StopConfig::FromSamplingParams(params, tok->eos_token_id(), 512));
  IncrementalDetokenizer detok(*tok, prompt);
  std::string text;
  std::optional<FinishReason> finish;
  int64_t n = 0;
  for (int32_t id : output) {
    ++n;
    StopResult r = checker.Append(detok.Append(id), id, n, static_cast<int64_t>(prompt.size()) + n);
    EXPECT_TRUE(IsValidUtf8(r.emit_now)) << r.emit_now;
    text += r.emit_now;
    if (r.finish_reason.has_value()) {
      finish = r.finish_reason;
      break;
    }
  }
  EXPECT_EQ(text, " 你好 ");
  EXPECT_EQ(finish, FinishReason::kStop);
}

}  // namespace
}  // namespace pagoda
