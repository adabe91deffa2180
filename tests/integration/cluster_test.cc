// The distributed cluster end to end: `pagoda serve` starts a router and R x T pagoda-worker
// processes on loopback (OS-chosen ports) over the real stories260K model, and these tests talk
// to it through the public gRPC API: tensor-parallel correctness against golden_greedy.jsonl,
// concurrency, prefix-aware routing, cancellation releasing every rank's state, failover after
// kill -9 of a worker, queue bounds, request validation, a worker that cannot load its model, and
// the engine flags `pagoda serve` passes on to its router.
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/serve_cluster.h"
#include "tests/testing/smollm2_near_tie.h"
#include "tests/testing/stories260k.h"

namespace pagoda::testing {
namespace {

using ::testing::HasSubstr;

std::vector<int32_t> Ids(const google::protobuf::RepeatedField<int32_t>& ids) {
  return std::vector<int32_t>(ids.begin(), ids.end());
}

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> token_ids;
  std::string text;
  int num_messages = 0;
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
};

// Streams a request to the end; `on_message` runs after each message (e.g. to inject a fault).
StreamResult Stream(v1::Generation::Stub& stub, const v1::GenerateRequest& request,
                    const std::function<void(int)>& on_message = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub.Generate(&context, request);
  StreamResult result;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    ++result.num_messages;
    for (const v1::Completion& out : response.outputs()) {
      result.text += out.text();
      result.token_ids.insert(result.token_ids.end(), out.token_ids().begin(),
                              out.token_ids().end());
      if (out.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        result.finish_reason = out.finish_reason();
      }
    }
    if (on_message) on_message(result.num_messages);
  }
  result.status = reader->Finish();
  return result;
}

// GET from the router's HTTP API: the JSON body (null when the request failed).
nlohmann::json GetJson(int http_port, const std::string& path) {
  httplib::Client client("127.0.0.1", http_port);
  client.set_read_timeout(std::chrono::seconds(120));
  const httplib::Result result = client.Get(path);
  if (!result || result->status != 200) return nullptr;
  return nlohmann::json::parse(result->body, nullptr, /*allow_exceptions=*/false);
}

grpc::Status Complete(v1::Generation::Stub& stub, const v1::GenerateRequest& request,
                      v1::CompleteResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  return stub.Complete(&context, request, response);
}

// A greedy request for a golden prompt. The goldens include an unconditional one (empty text:
// BOS only), which the API takes as token ids since an empty text prompt is refused.
v1::GenerateRequest GoldenRequest(const GoldenCase& golden, int max_tokens) {
  v1::GenerateRequest request = GreedyRequest(golden.prompt, max_tokens);
  if (golden.prompt.empty()) {
    request.mutable_token_ids()->mutable_ids()->Add(golden.prompt_ids.begin(),
                                                    golden.prompt_ids.end());
  }
  return request;
}

// Greedy through the cluster, every golden prompt at once (one continuous batch per replica).
void ExpectGoldens(ServeCluster& cluster) {
  const std::vector<GoldenCase> goldens = LoadStories260KGoldens();
  ASSERT_FALSE(goldens.empty());
  std::vector<v1::CompleteResponse> responses(goldens.size());
  std::vector<grpc::Status> statuses(goldens.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < goldens.size(); ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = Complete(
          cluster.stub(), GoldenRequest(goldens[i], static_cast<int>(goldens[i].greedy_ids.size())),
          &responses[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < goldens.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    ASSERT_EQ(responses[i].completions_size(), 1);
    EXPECT_EQ(Ids(responses[i].completions(0).token_ids()), goldens[i].greedy_ids)
        << "prompt " << i << ": " << goldens[i].prompt;
    EXPECT_EQ(responses[i].completions(0).text(), goldens[i].greedy_text);
    EXPECT_EQ(responses[i].usage().prompt_tokens(),
              static_cast<int64_t>(goldens[i].prompt_ids.size()));
  }
}

// Every golden prompt with bad_words, speculating and not (the request opts out): the same tokens
// (a verification row bans against the outputs and drafts before it), without the banned words,
// and the bans change some outputs.
void ExpectBadWordsAlikeWithAndWithoutSpeculation(ServeCluster& cluster) {
  constexpr int kMaxTokens = 48;
  int changed = 0;
  for (const GoldenCase& golden : LoadStories260KGoldens()) {
    std::vector<std::vector<int32_t>> outputs;
    for (bool disable : {false, true}) {
      v1::GenerateRequest request = GoldenRequest(golden, kMaxTokens);
      for (const char* word : {"little girl", "big", "She wanted"}) {
        request.mutable_sampling()->add_bad_words(word);
      }
      request.mutable_sampling()->set_disable_speculative_decoding(disable);
      v1::CompleteResponse response;
      const grpc::Status status = Complete(cluster.stub(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      outputs.push_back(Ids(response.completions(0).token_ids()));
      EXPECT_THAT(response.completions(0).text(), ::testing::Not(HasSubstr("little girl")));
      EXPECT_THAT(response.completions(0).text(), ::testing::Not(HasSubstr("She wanted")));
    }
    EXPECT_EQ(outputs[0], outputs[1]) << golden.prompt;
    const size_t n = std::min<size_t>(kMaxTokens, golden.greedy_ids.size());
    changed += outputs[0] !=
               std::vector<int32_t>(golden.greedy_ids.begin(), golden.greedy_ids.begin() + n);
  }
  EXPECT_GT(changed, 0);
}

class TensorParallelGolden : public ::testing::TestWithParam<int> {};

TEST_P(TensorParallelGolden, GreedyOutputsEqualGolden) {
  auto cluster = ServeCluster::Start({.replicas = 1, .tp = GetParam()});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ExpectGoldens(**cluster);
}

INSTANTIATE_TEST_SUITE_P(Tp, TensorParallelGolden, ::testing::Values(1, 2, 4),
                         [](const auto& info) { return absl::StrCat("tp", info.param); });

// One 2 x 2 cluster shared by the tests that do not break it.
class TwoByTwo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = ServeCluster::Start({.replicas = 2, .tp = 2});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static ServeCluster* cluster_;
};
ServeCluster* TwoByTwo::cluster_ = nullptr;

TEST_F(TwoByTwo, SixtyFourConcurrentStreamsCompleteCorrectly) {
  const std::vector<GoldenCase> goldens = LoadStories260KGoldens();
  constexpr int kStreams = 64;
  std::vector<StreamResult> results(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      const GoldenCase& golden = goldens[i % goldens.size()];
      results[i] = Stream(cluster_->stub(),
                          GoldenRequest(golden, static_cast<int>(golden.greedy_ids.size())));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kStreams; ++i) {
    const GoldenCase& golden = goldens[i % goldens.size()];
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].token_ids, golden.greedy_ids) << i;
    EXPECT_EQ(results[i].text, golden.greedy_text) << i;
    EXPECT_NE(results[i].finish_reason, v1::FINISH_REASON_UNSPECIFIED);
  }
  const v1::GetServerInfoResponse info = cluster_->Info();
  for (const v1::ReplicaInfo& replica : info.replicas()) EXPECT_EQ(replica.state(), "ready");
}

TEST_F(TwoByTwo, RepeatedLongPrefixGoesToTheReplicaThatCachedIt) {
  // A prompt of well over three 16-token blocks that no other test uses.
  std::string prefix = "The old lighthouse keeper counted the boats";
  for (int i = 0; i < 8; ++i) prefix += " and the waves and the birds";
  v1::CompleteResponse first;
  ASSERT_TRUE(Complete(cluster_->stub(), GreedyRequest(prefix + " at dawn.", 4), &first).ok());

  const v1::GetServerInfoResponse before = cluster_->Info();
  for (int i = 0; i < 4; ++i) {
    v1::CompleteResponse response;
    ASSERT_TRUE(Complete(cluster_->stub(),
                         GreedyRequest(absl::StrCat(prefix, " in the evening ", i, "."), 4),
                         &response)
                    .ok());
  }
  const v1::GetServerInfoResponse after = cluster_->Info();
  // Every repeat hit on one replica: the one holding the prefix; the other saw no new hit.
  int64_t hit_gain[2] = {
      after.replicas(0).prefix_cache_hits() - before.replicas(0).prefix_cache_hits(),
      after.replicas(1).prefix_cache_hits() - before.replicas(1).prefix_cache_hits()};
  const int cached = hit_gain[0] > 0 ? 0 : 1;
  EXPECT_GE(hit_gain[cached], 4 * 3 * 16) << "each repeat reuses at least three full blocks";
  EXPECT_EQ(hit_gain[1 - cached], 0);
}

// True once no replica runs a request or holds a KV block and no rank keeps a sequence.
bool EveryRankReleased(ServeCluster& cluster) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    bool released = true;
    const v1::GetServerInfoResponse info = cluster.Info();
    for (const v1::ReplicaInfo& replica : info.replicas()) {
      released &= replica.num_running_requests() == 0 && replica.kv_cache_usage() == 0;
    }
    for (int r = 0; r < 2 && released; ++r) {
      for (int t = 0; t < 2 && released; ++t) {
        grpc::ClientContext health_context;
        internal::HealthResponse health;
        if (!cluster.WorkerStub(r, t)
                 ->Health(&health_context, internal::HealthRequest(), &health)
                 .ok()) {
          return false;
        }
        released &= health.num_sequences() == 0;
      }
    }
    if (released) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

TEST_F(TwoByTwo, CancelMidStreamReleasesEveryRank) {
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 400);
  request.mutable_sampling()->set_ignore_eos(true);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      cluster_->stub().Generate(&context, request);
  v1::GenerateResponse response;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The router frees the blocks and tells every rank to drop the sequence.
  EXPECT_TRUE(EveryRankReleased(*cluster_)) << "blocks or worker state left after cancel";
}

TEST_F(TwoByTwo, DeadlineExceededReleasesEveryRank) {
  // 8 x 450 tokens take far longer than the 150 ms deadline on 2 x TP 2 (each step an
  // all-reduce between processes), so the deadline passes mid-generation.
  v1::GenerateRequest request = GreedyRequest("Once upon a time", 450);
  request.mutable_sampling()->set_ignore_eos(true);
  request.mutable_sampling()->set_n(8);
  request.mutable_sampling()->set_temperature(1.0f);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(150)));
  v1::CompleteResponse response;
  EXPECT_EQ(cluster_->stub().Complete(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(EveryRankReleased(*cluster_)) << "blocks or worker state left after the deadline";
}

TEST_F(TwoByTwo, InvalidRequestsNameTheFieldAndTheServerKeepsServing) {
  struct Case {
    std::string name;
    std::function<void(v1::GenerateRequest&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"empty prompt", [](v1::GenerateRequest& r) { r.set_text(""); }, "prompt"},
      {"max_tokens 0", [](v1::GenerateRequest& r) { r.mutable_sampling()->set_max_tokens(0); },
       "max_tokens"},
      {"max_tokens too big",
       [](v1::GenerateRequest& r) { r.mutable_sampling()->set_max_tokens(1 << 20); }, "max_tokens"},
      {"temperature < 0",
       [](v1::GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.5f); }, "temperature"},
      {"top_p 0", [](v1::GenerateRequest& r) { r.mutable_sampling()->set_top_p(0); }, "top_p"},
      {"top_p > 1", [](v1::GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); }, "top_p"},
      {"n too big", [](v1::GenerateRequest& r) { r.mutable_sampling()->set_n(1000); }, "n"},
      {"prompt longer than the context",
       [](v1::GenerateRequest& r) { r.mutable_token_ids()->mutable_ids()->Resize(100000, 300); },
       "prompt"},
      {"unknown model", [](v1::GenerateRequest& r) { r.set_model("gpt-17"); }, "model"},
      {"token id outside the vocabulary",
       [](v1::GenerateRequest& r) { r.mutable_token_ids()->add_ids(1 << 30); }, "prompt"},
      {"no prompt", [](v1::GenerateRequest& r) { r.clear_prompt(); }, "prompt"},
      {"invalid regex",
       [](v1::GenerateRequest& r) {
         r.mutable_sampling()->mutable_structured_output()->set_kind(
             v1::StructuredOutput::KIND_REGEX);
         r.mutable_sampling()->mutable_structured_output()->set_text("(ab");
       },
       "structured_output"},
      {"unsupported schema keyword",
       [](v1::GenerateRequest& r) {
         r.mutable_sampling()->mutable_structured_output()->set_kind(
             v1::StructuredOutput::KIND_JSON_SCHEMA);
         r.mutable_sampling()->mutable_structured_output()->set_text(
             R"({"type": "integer", "multipleOf": 3})");
       },
       "structured_output"},
      {"empty bad word", [](v1::GenerateRequest& r) { r.mutable_sampling()->add_bad_words(""); },
       "bad_words"},
      {"bad word with beam search",
       [](v1::GenerateRequest& r) {
         r.mutable_sampling()->add_bad_words("dog");
         r.mutable_sampling()->set_beam_width(2);
       },
       "bad_words"},
      {"bad word token ids from a client",
       [](v1::GenerateRequest& r) { r.mutable_sampling()->add_bad_words_token_ids()->add_ids(1); },
       "bad_words_token_ids"},
      {"grammar accepting nothing",
       [](v1::GenerateRequest& r) {
         r.mutable_sampling()->mutable_structured_output()->set_kind(
             v1::StructuredOutput::KIND_GRAMMAR);
         r.mutable_sampling()->mutable_structured_output()->set_text(R"(root ::= "a" root)");
       },
       "structured_output"},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest request = GreedyRequest("Once upon a time", 8);
    c.mutate(request);
    v1::CompleteResponse response;
    const grpc::Status status = Complete(cluster_->stub(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(status.error_message(), HasSubstr(c.field + ":")) << c.name;
    // Streaming answers the same.
    EXPECT_EQ(Stream(cluster_->stub(), request).status.error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << c.name;
  }
  v1::CompleteResponse response;
  EXPECT_TRUE(Complete(cluster_->stub(), GreedyRequest("Once upon a time", 8), &response).ok());
  EXPECT_EQ(response.completions(0).token_ids_size(), 8);
}

// A constraint through the gRPC API and the workers (each tensor-parallel rank masks alike).
TEST_F(TwoByTwo, StructuredOutputHoldsThroughTheWorkers) {
  for (float temperature : {0.0f, 0.8f}) {
    v1::GenerateRequest request = GreedyRequest("Once upon a time", 40);
    request.mutable_sampling()->set_temperature(temperature);
    request.mutable_sampling()->set_seed(5);
    request.mutable_sampling()->mutable_structured_output()->set_kind(
        v1::StructuredOutput::KIND_CHOICE);
    request.mutable_sampling()->mutable_structured_output()->set_text(
        R"(["Lily went home.", "Tom saw a big dog."])");
    v1::CompleteResponse response;
    ASSERT_TRUE(Complete(cluster_->stub(), request, &response).ok());
    const v1::Completion& out = response.completions(0);
    EXPECT_THAT(out.text(), ::testing::AnyOf("Lily went home.", "Tom saw a big dog."));
    EXPECT_EQ(out.finish_reason(), v1::FINISH_REASON_STOP);
  }
}

// bad_words over gRPC, through both ranks of a replica: the golden's second token ("there") is
// banned wherever it would come, the first one is kept.
TEST_F(TwoByTwo, BadWordsHoldThroughTheWorkers) {
  const GoldenCase golden = LoadStories260KGoldens()[0];
  ASSERT_EQ(golden.greedy_text.rfind(", there", 0), 0u) << golden.greedy_text;
  v1::GenerateRequest request = GoldenRequest(golden, 32);
  request.mutable_sampling()->add_bad_words("there");
  v1::CompleteResponse response;
  const grpc::Status status = Complete(cluster_->stub(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::vector<int32_t> got = Ids(response.completions(0).token_ids());
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0], golden.greedy_ids[0]);
  EXPECT_THAT(got, ::testing::Not(::testing::Contains(golden.greedy_ids[1])));
}

TEST_F(TwoByTwo, TokenizeDetokenizeListModelsServerInfo) {
  grpc::ClientContext c1;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Once upon a time");
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(cluster_->stub().Tokenize(&c1, tokenize, &tokens).ok());
  EXPECT_EQ(Ids(tokens.token_ids()), LoadStories260KGoldens()[0].prompt_ids);

  grpc::ClientContext c2;
  v1::DetokenizeRequest detokenize;
  detokenize.mutable_token_ids()->Add(tokens.token_ids().begin(), tokens.token_ids().end());
  v1::DetokenizeResponse text;
  ASSERT_TRUE(cluster_->stub().Detokenize(&c2, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "Once upon a time");

  grpc::ClientContext c3;
  v1::ListModelsResponse models;
  ASSERT_TRUE(cluster_->stub().ListModels(&c3, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).max_model_len(), 512);  // stories260K's positions

  const v1::GetServerInfoResponse info = cluster_->Info();
  ASSERT_EQ(info.replicas_size(), 2);
  EXPECT_EQ(info.replicas(0).tp_size(), 2);
  EXPECT_EQ(info.scheduling_policy(), "prefix_aware");
}

TEST(Cluster, FullQueueAnswersResourceExhausted) {
  auto cluster = ServeCluster::Start(
      {.replicas = 1,
       .tp = 1,
       .extra_args = {"--max-queued-requests", "1", "--router-flag=--max-num-seqs=1"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  constexpr int kRequests = 8;
  std::vector<StreamResult> results(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest request = GreedyRequest("Once upon a time", 300);
      request.mutable_sampling()->set_ignore_eos(true);
      results[i] = Stream((*cluster)->stub(), request);
    });
  }
  for (std::thread& thread : threads) thread.join();
  int exhausted = 0;
  int completed = 0;
  for (const StreamResult& result : results) {
    if (result.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_THAT(result.status.error_message(), HasSubstr("queue is full"));
    } else {
      ASSERT_TRUE(result.status.ok()) << result.status.error_message();
      EXPECT_EQ(result.token_ids.size(), 300u);
      ++completed;
    }
  }
  EXPECT_GE(exhausted, 1);
  // At least the first; a second when it arrived after the first left the waiting queue (a
  // burst that lands before the first step finds the one waiting slot taken).
  EXPECT_GE(completed, 1);
  EXPECT_EQ(exhausted + completed, kRequests);
}

// The gRPC status of ListModels with `authorization` metadata (none when empty).
grpc::StatusCode ListModelsWith(ServeCluster& cluster, const std::string& authorization) {
  grpc::ClientContext context;
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  v1::ListModelsResponse response;
  return cluster.stub().ListModels(&context, v1::ListModelsRequest(), &response).error_code();
}

TEST(Cluster, ApiKeysFromAFileGuardGrpcAndHttpAndRotateOnSighup) {
  const std::string keys =
      (std::filesystem::temp_directory_path() / absl::StrCat("pagoda_keys_", getpid())).string();
  std::ofstream(keys) << "# rotated by ops\nalpha\n\nbeta\n";
  auto cluster = ServeCluster::Start({.replicas = 1,
                                      .tp = 1,
                                      .extra_args = {"--router-flag=--api-key-file=" + keys},
                                      .authorization = "Bearer alpha"});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ServeCluster& c = **cluster;
  EXPECT_EQ(ListModelsWith(c, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModelsWith(c, "Bearer gamma"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModelsWith(c, "alpha"), grpc::StatusCode::UNAUTHENTICATED);  // no "Bearer "
  EXPECT_EQ(ListModelsWith(c, "Bearer alpha"), grpc::StatusCode::OK);
  EXPECT_EQ(ListModelsWith(c, "Bearer beta"), grpc::StatusCode::OK);
  {
    grpc::ClientContext context;
    v1::CompleteResponse response;
    EXPECT_EQ(c.stub().Complete(&context, GreedyRequest("Once", 2), &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  httplib::Client http("127.0.0.1", c.http_port());
  const char* body = R"({"prompt": "Once", "max_tokens": 2})";
  EXPECT_EQ(http.Post("/v1/completions", body, "application/json")->status, 401);
  http.set_bearer_token_auth("beta");
  EXPECT_EQ(http.Post("/v1/completions", body, "application/json")->status, 200);

  // Rotation: a new file and SIGHUP; the old keys stop working, the new one works.
  std::ofstream(keys) << "gamma\n";
  const int router_pid = c.State()["router"]["pid"].get<int>();
  ASSERT_EQ(kill(router_pid, SIGHUP), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (ListModelsWith(c, "Bearer gamma") != grpc::StatusCode::OK && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(ListModelsWith(c, "Bearer gamma"), grpc::StatusCode::OK) << c.LogTails();
  EXPECT_EQ(ListModelsWith(c, "Bearer beta"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(http.Post("/v1/completions", body, "application/json")->status, 401);
  // A broken file keeps the keys in force rather than opening or closing the server.
  std::ofstream(keys) << "# nothing\n";
  ASSERT_EQ(kill(router_pid, SIGHUP), 0);
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(ListModelsWith(c, "Bearer gamma"), grpc::StatusCode::OK);
  EXPECT_EQ(ListModelsWith(c, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(c.State()["router"]["pid"].get<int>(), router_pid)
      << "SIGHUP must not restart the router";
  std::filesystem::remove(keys);
}

TEST(Cluster, ServePassesTheEngineFlagsOnToTheRouterInTheirNewSpelling) {
  // The last value of a flag wins; an old spelling is accepted (with a warning) and passed on in
  // the new one.
  auto cluster = ServeCluster::Start(
      {.replicas = 1,
       .tp = 1,
       .extra_args = {"--num-kv-blocks=77", "--max-model-len", "128", "--disable-prefix-caching"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const v1::GetServerInfoResponse info = (*cluster)->Info();
  EXPECT_EQ(info.max_model_len(), 128);
  ASSERT_EQ(info.replicas_size(), 1);
  EXPECT_EQ(info.replicas(0).num_device_blocks(), 77);
  // GET /v1/models reports the --max-model-len the engine holds requests to.
  const nlohmann::json models = GetJson((*cluster)->http_port(), "/v1/models");
  ASSERT_EQ(models["data"].size(), 1u) << models.dump();
  EXPECT_EQ(models["data"][0]["max_model_len"], 128);

  const int router_pid = (*cluster)->State()["router"]["pid"];
  std::ifstream in("/proc/" + std::to_string(router_pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  EXPECT_THAT(args, ::testing::Contains("--num-gpu-blocks-override=77"));
  EXPECT_THAT(args, ::testing::Contains("--max-model-len=128"));
  EXPECT_THAT(args, ::testing::Contains("--no-enable-prefix-caching"));
  EXPECT_THAT(args, ::testing::Not(::testing::Contains("--num-kv-blocks=77")));
  EXPECT_THAT(args, ::testing::Not(::testing::Contains("--disable-prefix-caching")));
}

TEST(Cluster, ServePassesTheModelFlagsOnToItsWorkersAndTheGoldensHold) {
  auto cluster = ServeCluster::Start(
      {.replicas = 1, .tp = 2, .extra_args = {"--dtype", "bfloat16", "--kv-cache-dtype=bfloat16"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (int rank = 0; rank < 2; ++rank) {
    std::ifstream in("/proc/" + std::to_string((*cluster)->WorkerPid(0, rank)) + "/cmdline",
                     std::ios::binary);
    std::vector<std::string> args;
    for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
    EXPECT_THAT(args, ::testing::Contains("--dtype=bfloat16"));
    EXPECT_THAT(args, ::testing::Contains("--kv-cache-dtype=bfloat16"));
  }
  ExpectGoldens(**cluster);
}

// Speculative decoding through serve -> router -> two tensor-parallel worker processes: the
// drafts travel in the step protocol, every rank verifies them alike, the goldens hold, and
// /metrics counts the drafts under vLLM's names.
TEST(Cluster, SpeculativeDecodingOverTwoRanksKeepsTheGoldens) {
  // The n-gram proposer in the router's engine; a draft model (stories260K proposing for itself)
  // sharded over the workers beside the model.
  for (const std::string& config :
       {std::string(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 1})"),
        nlohmann::json{{"model", testing::Stories260KDir()}, {"num_speculative_tokens", 3}}
            .dump()}) {
    auto cluster = ServeCluster::Start(
        {.replicas = 1, .tp = 2, .extra_args = {"--speculative-config", config}});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    ExpectGoldens(**cluster);
    ExpectBadWordsAlikeWithAndWithoutSpeculation(**cluster);
    httplib::Client http("127.0.0.1", (*cluster)->http_port());
    const httplib::Result metrics = http.Get("/metrics");
    ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
    const std::regex accepted(
        R"re(pagoda:spec_decode_num_accepted_tokens_total\{[^}]*\} ([0-9.e+]+))re");
    std::smatch match;
    ASSERT_TRUE(std::regex_search(metrics->body, match, accepted)) << metrics->body;
    EXPECT_GT(std::stod(match[1].str()), 0) << config;
  }
}

// A draft whose vocabulary is not the model's is refused when the cluster starts, naming both.
TEST(Cluster, ADraftModelWithAnotherVocabularyIsRefusedAtStart) {
  const std::string gguf = std::string(PAGODA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << gguf << " is absent (install-deps.sh)";
  auto cluster = ServeCluster::Start(
      {.replicas = 1,
       .tp = 1,
       .extra_args = {"--speculative-config",
                      nlohmann::json{{"model", gguf}, {"num_speculative_tokens", 3}}.dump()}});
  ASSERT_FALSE(cluster.ok());
  EXPECT_THAT(std::string(cluster.status().message()), HasSubstr("vocabulary of 49152 tokens"));
}

// `pagoda serve --model FILE.gguf`: the router takes the tokenizer and chat template from the
// file, the workers its (quantized) weights; SmolLM2's 9 heads split over 3 ranks.
TEST(Cluster, ServesAGgufModelOverThreeRanks) {
  const std::string gguf = std::string(PAGODA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << gguf << " is absent (install-deps.sh)";
  std::ifstream goldens(std::string(PAGODA_SHARED_DIR) + "/models/smollm2/golden_greedy.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(goldens, line));
  const nlohmann::json golden = nlohmann::json::parse(line);
  auto cluster = ServeCluster::Start({.replicas = 1, .tp = 3, .model_dir = gguf});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  constexpr int kTokens = 16;
  v1::CompleteResponse response;
  const grpc::Status status =
      Complete((*cluster)->stub(), GreedyRequest(golden["prompt"], kTokens), &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << (*cluster)->LogTails();
  ASSERT_EQ(response.completions_size(), 1);
  EXPECT_EQ(response.usage().prompt_tokens(), static_cast<int64_t>(golden["prompt_ids"].size()));
  const std::vector<int32_t> want = golden["greedy_ids"].get<std::vector<int32_t>>();
  const std::vector<int32_t> got = Ids(response.completions(0).token_ids());
  ASSERT_FALSE(got.empty());
  for (size_t t = 0; t < got.size(); ++t) {
    // A near-tie (tests/testing/smollm2_near_tie.h; the workers inherit this environment).
    if (got[t] != want[t] && golden["top2_margin"][t].get<double>() < testing::SmolLm2NearTie()) {
      break;
    }
    ASSERT_EQ(got[t], want[t]) << "token " << t;
  }
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  ASSERT_TRUE((*cluster)->stub().ListModels(&context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).id(), "SmolLM2-135M-Instruct.Q4_1");
  EXPECT_EQ(models.models(0).max_model_len(), 8192);  // the GGUF's llama.context_length
  const nlohmann::json http_models = GetJson((*cluster)->http_port(), "/v1/models");
  ASSERT_EQ(http_models["data"].size(), 1u) << http_models.dump();
  EXPECT_EQ(http_models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
  EXPECT_EQ(http_models["data"][0]["max_model_len"], 8192);
}

// What a fault in the middle of streaming did: the same golden requests (ignore_eos, 160 tokens)
// streamed once undisturbed and once with `signal` sent to one worker as soon as every stream
// has output.
struct FaultedStreams {
  int victim_pid = 0;
  bool signalled = false;
  std::vector<StreamResult> reference;
  std::vector<StreamResult> results;
};

FaultedStreams StreamThroughASignal(ServeCluster& cluster, int num_streams, int replica, int rank,
                                    int signal) {
  const std::vector<GoldenCase> goldens = LoadStories260KGoldens();
  constexpr int kMaxTokens = 160;
  auto request_for = [&](int i) {
    v1::GenerateRequest request = GoldenRequest(goldens[i % goldens.size()], kMaxTokens);
    request.mutable_sampling()->set_ignore_eos(true);
    return request;
  };
  FaultedStreams run;
  run.reference.resize(num_streams);
  run.results.resize(num_streams);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < num_streams; ++i) {
      threads.emplace_back([&, i] { run.reference[i] = Stream(cluster.stub(), request_for(i)); });
    }
    for (std::thread& thread : threads) thread.join();
  }
  run.victim_pid = cluster.WorkerPid(replica, rank);
  if (run.victim_pid <= 0) return run;
  std::atomic<int> streaming = 0;
  std::atomic<bool> signalled = false;
  std::vector<std::thread> threads;
  for (int i = 0; i < num_streams; ++i) {
    threads.emplace_back([&, i] {
      run.results[i] = Stream(cluster.stub(), request_for(i), [&](int messages) {
        if (messages == 1 && ++streaming == num_streams && !signalled.exchange(true)) {
          kill(run.victim_pid, signal);
        }
      });
    });
  }
  for (std::thread& thread : threads) thread.join();
  run.signalled = signalled.load();
  return run;
}

TEST(Cluster, KillNineWorkerMidStreamMovesRequestsWithoutErrors) {
  auto started = ServeCluster::Start({.replicas = 2, .tp = 2});
  ASSERT_TRUE(started.ok()) << started.status();
  ServeCluster& cluster = **started;
  // kill -9 rank 1 of replica 0 once every stream has received output.
  const FaultedStreams run = StreamThroughASignal(cluster, 32, 0, 1, SIGKILL);
  for (const StreamResult& r : run.reference) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  ASSERT_GT(run.victim_pid, 0);
  ASSERT_TRUE(run.signalled);
  for (size_t i = 0; i < run.results.size(); ++i) {
    ASSERT_TRUE(run.results[i].status.ok()) << i << ": " << run.results[i].status.error_message();
    EXPECT_EQ(run.results[i].token_ids, run.reference[i].token_ids) << i;
    EXPECT_EQ(run.results[i].text, run.reference[i].text) << i;
  }
  // `pagoda serve` restarts the worker; the router re-initializes its replica.
  ASSERT_TRUE(cluster.WaitUntilReady(2, absl::Seconds(60)).ok());
  const v1::GetServerInfoResponse info = cluster.Info();
  EXPECT_GE(info.replicas(0).num_restarts(), 1);
  EXPECT_NE(cluster.WorkerPid(0, 1), run.victim_pid);
  // And it serves again.
  v1::CompleteResponse response;
  EXPECT_TRUE(Complete(cluster.stub(), GreedyRequest("Once upon a time", 8), &response).ok());
}

// Failover with speculation: streams whose replica dies mid-generation resume on the other one,
// whose draft model catches up over the moved context, and give the undisturbed tokens.
TEST(Cluster, KillNineMidStreamWithADraftModelResumesWithSpeculation) {
  auto started = ServeCluster::Start(
      {.replicas = 2,
       .tp = 1,
       .extra_args = {"--speculative-config", nlohmann::json{{"model", testing::Stories260KDir()},
                                                             {"num_speculative_tokens", 3}}
                                                  .dump()}});
  ASSERT_TRUE(started.ok()) << started.status();
  ServeCluster& cluster = **started;
  const FaultedStreams run = StreamThroughASignal(cluster, 12, 0, 0, SIGKILL);
  ASSERT_GT(run.victim_pid, 0);
  ASSERT_TRUE(run.signalled);
  for (size_t i = 0; i < run.results.size(); ++i) {
    ASSERT_TRUE(run.reference[i].status.ok()) << run.reference[i].status.error_message();
    ASSERT_TRUE(run.results[i].status.ok()) << i << ": " << run.results[i].status.error_message();
    EXPECT_EQ(run.results[i].token_ids, run.reference[i].token_ids) << i;
  }
  // Speculation ran on the surviving replica.
  httplib::Client http("127.0.0.1", cluster.http_port());
  const httplib::Result metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  const std::regex accepted(
      R"re(pagoda:spec_decode_num_accepted_tokens_total\{[^}]*replica="1"[^}]*\} ([0-9.e+]+))re");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(metrics->body, match, accepted)) << metrics->body;
  EXPECT_GT(std::stod(match[1].str()), 0);
}

// What a request whose client takes the whole result at the end (gRPC Complete, HTTP without
// stream) answered: each completion's text, by index, or the error.
struct WholeResult {
  std::string error;
  std::vector<std::string> texts;
};

WholeResult CompleteWhole(ServeCluster& cluster, const GoldenCase& golden, int seed, bool http) {
  constexpr int kMaxTokens = 160;
  WholeResult result;
  if (http) {
    httplib::Client client("127.0.0.1", cluster.http_port());
    client.set_read_timeout(std::chrono::seconds(120));
    const nlohmann::json body = {{"prompt", golden.prompt.empty() ? "Once" : golden.prompt},
                                 {"max_tokens", kMaxTokens},
                                 {"n", 2},
                                 {"temperature", 0.8},
                                 {"seed", seed},
                                 {"ignore_eos", true}};
    const httplib::Result res = client.Post("/v1/completions", body.dump(), "application/json");
    if (!res || res->status != 200) {
      result.error = res ? absl::StrCat(res->status, " ", res->body) : "no HTTP response";
      return result;
    }
    const nlohmann::json answer = nlohmann::json::parse(res->body);
    result.texts.resize(answer["choices"].size());
    for (const nlohmann::json& choice : answer["choices"]) {
      result.texts.at(choice["index"].get<size_t>()) = choice["text"].get<std::string>();
    }
    return result;
  }
  v1::GenerateRequest request = GoldenRequest(golden, kMaxTokens);
  request.mutable_sampling()->set_ignore_eos(true);
  request.mutable_sampling()->set_n(2);
  request.mutable_sampling()->set_temperature(0.8f);
  request.mutable_sampling()->set_seed(seed);
  v1::CompleteResponse response;
  if (const grpc::Status status = Complete(cluster.stub(), request, &response); !status.ok()) {
    result.error = status.error_message();
    return result;
  }
  for (const v1::Completion& out : response.completions()) result.texts.push_back(out.text());
  return result;
}

// A client that takes the whole result at the end has been given nothing before it: when its
// replica dies mid-generation, a request with n = 2 (which could not continue from output a
// client has seen) starts over on the other replica with the same seed and answers what a
// fault-free run does.
TEST(Cluster, KillNineMidGenerationRestartsWholeResultRequestsWithSeveralCompletions) {
  auto started = ServeCluster::Start({.replicas = 2, .tp = 2});
  ASSERT_TRUE(started.ok()) << started.status();
  ServeCluster& cluster = **started;
  const std::vector<GoldenCase> goldens = LoadStories260KGoldens();
  constexpr int kRequests = 8;  // even ones over gRPC, odd ones over HTTP
  auto run_all = [&](std::vector<WholeResult>& results) {
    std::vector<std::thread> threads;
    for (int i = 0; i < kRequests; ++i) {
      threads.emplace_back([&, i] {
        results[i] = CompleteWhole(cluster, goldens[i % goldens.size()], 100 + i, i % 2 == 1);
      });
    }
    for (std::thread& thread : threads) thread.join();
  };
  std::vector<WholeResult> reference(kRequests);
  const absl::Time start = absl::Now();
  run_all(reference);
  const absl::Duration fault_free = absl::Now() - start;
  for (const WholeResult& r : reference) {
    ASSERT_TRUE(r.error.empty()) << r.error;
    ASSERT_EQ(r.texts.size(), 2u);
  }
  const int victim = cluster.WorkerPid(0, 1);
  ASSERT_GT(victim, 0);
  std::vector<WholeResult> results(kRequests);
  std::thread clients([&] { run_all(results); });
  // kill -9 rank 1 of replica 0 once it runs some of them, a quarter of a fault-free run in.
  int64_t running_at_kill = 0;
  for (int i = 0; i < 500 && running_at_kill == 0; ++i) {
    running_at_kill = cluster.Info().replicas(0).num_running_requests();
    if (running_at_kill == 0) absl::SleepFor(absl::Milliseconds(10));
  }
  absl::SleepFor(fault_free / 4);
  kill(victim, SIGKILL);
  clients.join();
  ASSERT_GT(running_at_kill, 0);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].error.empty()) << i << ": " << results[i].error;
    EXPECT_EQ(results[i].texts, reference[i].texts) << i;
  }
  ASSERT_TRUE(cluster.WaitUntilReady(2, absl::Seconds(60)).ok());
  EXPECT_GE(cluster.Info().replicas(0).num_restarts(), 1);
}

TEST(Cluster, SigtermOnAWorkerHandsItsRequestsOverBeforeItExits) {
  auto started = ServeCluster::Start({.replicas = 2, .tp = 2});
  ASSERT_TRUE(started.ok()) << started.status();
  ServeCluster& cluster = **started;
  // SIGTERM (a rolling restart's) to rank 0 of replica 1 once every stream has output: it reports
  // DRAINING, the router moves the replica's requests while the rank still answers, and it exits
  // with status 0 once no step comes.
  const FaultedStreams run = StreamThroughASignal(cluster, 16, 1, 0, SIGTERM);
  for (const StreamResult& r : run.reference) {
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  ASSERT_GT(run.victim_pid, 0);
  ASSERT_TRUE(run.signalled);
  for (size_t i = 0; i < run.results.size(); ++i) {
    ASSERT_TRUE(run.results[i].status.ok()) << i << ": " << run.results[i].status.error_message();
    EXPECT_EQ(run.results[i].token_ids, run.reference[i].token_ids) << i;
  }
  ASSERT_TRUE(cluster.WaitUntilReady(2, absl::Seconds(60)).ok());
  EXPECT_NE(cluster.WorkerPid(1, 0), run.victim_pid);
  // Taken out by the health check's DRAINING, not by a step that failed on a dead rank.
  const v1::GetServerInfoResponse info = cluster.Info();
  ASSERT_EQ(info.replicas_size(), 2);
  EXPECT_THAT(info.replicas(1).last_error(), ::testing::HasSubstr("is draining"));
  EXPECT_THAT(cluster.LogTails(), ::testing::HasSubstr(absl::StrCat("(pid ", run.victim_pid,
                                                                    ") exited with status 0")));
  v1::CompleteResponse response;
  EXPECT_TRUE(Complete(cluster.stub(), GreedyRequest("Once upon a time", 8), &response).ok());
}

TEST(Cluster, ServeRefusesAKvCacheThatCannotHoldOneContextBeforeStartingAnything) {
  // stories260K: 512 positions; 0.0001 GiB of KV cache holds 5 blocks of 16 tokens per worker.
  // The router would refuse the replica at every Init; pagoda serve says so up front.
  const std::string log = ::testing::TempDir() + "/pagoda_small_kv_cache.log";
  auto serve = Subprocess::Start(
      {std::string(PAGODA_BIN_DIR) + "/pagoda", "serve", "--model", Stories260KDir(), "--replicas",
       "1", "--tp", "1", "--grpc-port", "0", "--http-port", "-1", "--kv-cache-memory-gib=0.0001"},
      {.log_file = log});
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_EQ(serve->Wait(absl::Seconds(30)), 2);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, ::testing::HasSubstr("the KV cache holds 80 tokens (5 blocks of 16), fewer "
                                         "than max_model_len 512"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("pagoda-router")));
}

TEST(Cluster, WorkerThatCannotLoadItsModelFailsInitAndTheRouterServesWithTheOthers) {
  const std::string bin = PAGODA_BIN_DIR;
  const std::string dir = ::testing::TempDir() + "/pagoda_bad_worker";
  std::filesystem::create_directories(dir);
  auto good = Subprocess::Start({bin + "/pagoda-worker", "--host", "127.0.0.1", "--port", "0",
                                 "--port-file", dir + "/good.port"});
  auto bad =
      Subprocess::Start({bin + "/pagoda-worker", "--host", "127.0.0.1", "--port", "0",
                         "--port-file", dir + "/bad.port", "--model-dir", dir + "/no-such-model"});
  ASSERT_TRUE(good.ok() && bad.ok());
  auto read_port = [](const std::string& path) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    int port = 0;
    while (port == 0 && absl::Now() < deadline) {
      std::ifstream in(path);
      if (!(in >> port)) port = 0;
      if (port == 0) absl::SleepFor(absl::Milliseconds(20));
    }
    return port;
  };
  const int good_port = read_port(dir + "/good.port");
  const int bad_port = read_port(dir + "/bad.port");
  ASSERT_GT(good_port, 0);
  ASSERT_GT(bad_port, 0);
  auto router = Subprocess::Start({bin + "/pagoda-router", "--model", Stories260KDir(),
                                   "--grpc-port", "0", "--http-port", "-1", "--host", "127.0.0.1",
                                   "--port-file", dir + "/router.port", "--num-gpu-blocks-override",
                                   "256", "--replica", absl::StrCat("127.0.0.1:", good_port),
                                   "--replica", absl::StrCat("127.0.0.1:", bad_port)});
  ASSERT_TRUE(router.ok());
  const int router_port = read_port(dir + "/router.port");
  ASSERT_GT(router_port, 0);
  auto stub = v1::Generation::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", router_port),
                                                          grpc::InsecureChannelCredentials()));

  // The good replica comes up; the bad one stays down with the worker's reason.
  v1::GetServerInfoResponse info;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    info.Clear();
    stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
    if (info.replicas_size() == 2 && info.replicas(0).state() == "ready" &&
        !info.replicas(1).last_error().empty()) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(info.replicas_size(), 2);
  EXPECT_EQ(info.replicas(0).state(), "ready");
  EXPECT_NE(info.replicas(1).state(), "ready");
  EXPECT_THAT(info.replicas(1).last_error(), HasSubstr("cannot load the model"));
  EXPECT_THAT(info.replicas(1).last_error(), HasSubstr("no-such-model"));
  for (int i = 0; i < 4; ++i) {
    v1::CompleteResponse response;
    EXPECT_TRUE(Complete(*stub, GreedyRequest("Once upon a time", 8), &response).ok());
  }
  router->Terminate();
  good->Terminate();
  bad->Terminate();
  std::filesystem::remove_all(dir);
}

TEST(Cluster, PythonClientStreamsACompletion) {
  auto cluster = ServeCluster::Start({.replicas = 1, .tp = 1});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string out = ::testing::TempDir() + "/pagoda_client_out.txt";
  auto client = Subprocess::Start(
      {"/usr/bin/python3", std::string(PAGODA_SOURCE_DIR) + "/examples/python/client.py",
       "--target", (*cluster)->target(), "--prompt", "Once upon a time", "--max-tokens", "16",
       "--temperature", "0"},
      {.log_file = out});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::optional<int> exit = client->Wait(absl::Seconds(60));
  std::ifstream in(out);
  const std::string printed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(exit, std::optional<int>(0)) << printed;
  const GoldenCase golden = LoadStories260KGoldens()[0];
  // The first 16 greedy tokens of the golden continuation.
  EXPECT_THAT(printed, HasSubstr(", there was a little girl named Lily."));
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace pagoda::testing
