#include "router/frontend/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/chat_template/chat_template.h"
#include "engine/simulated_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "router/frontend/api_keys.h"

namespace pagoda {
namespace {

using nlohmann::json;

constexpr char kModel[] = "sim";
constexpr int64_t kMaxModelLen = 2048;

// A BPE tokenizer whose vocabulary is the printable ASCII characters (id = char - 32), without
// merges, decoded by concatenation: every character is one token.
const Tokenizer& CharTokenizer() {
  static const Tokenizer* tokenizer = [] {
    json vocab = json::object();
    for (int c = 32; c < 127; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 32;
    const json root = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
                       {"decoder", {{"type", "Fuse"}}}};
    auto made = Tokenizer::FromJson(root.dump(), "", "chars");
    EXPECT_TRUE(made.ok()) << made.status();
    return made->release();
  }();
  return *tokenizer;
}

// SimulatedExecutor whose steps take `step` of wall time (slept, not busy-waited), so a long
// request stays running while a test looks at it.
class SleepyExecutor final : public Executor {
 public:
  SleepyExecutor(SimulatedExecutorOptions options, absl::Duration step)
      : simulated_(std::move(options)), step_(step) {}
  const ExecutorInfo& info() const override { return simulated_.info(); }
  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override {
    absl::StatusOr<StepResult> result = simulated_.Apply(plan);
    return std::async(std::launch::deferred, [step = step_, result = std::move(result)]() mutable {
      absl::SleepFor(step);
      return std::move(result);
    });
  }

 private:
  SimulatedExecutor simulated_;
  const absl::Duration step_;
};

struct RouterSetup {
  absl::Duration step = absl::ZeroDuration();
  bool broken = false;  // the executor never starts: no replica is ever ready
  // Set: the executor starts only once it holds true (the replica comes up later).
  std::shared_ptr<std::atomic<bool>> startable;
  absl::Duration admission_wait = absl::ZeroDuration();
  int64_t max_num_seqs = 64;
  int64_t max_waiting_requests = 0;
  HttpServerOptions http;
  const ChatTemplate* chat_template = nullptr;
};

// A Frontend over one simulated replica and an HttpServer on a port the OS picks.
class TestRouter {
 public:
  explicit TestRouter(RouterSetup setup) {
    const SimulatedExecutorOptions simulated{.info = {.num_device_blocks = 1024,
                                                      .block_size = 16,
                                                      .max_model_len = kMaxModelLen,
                                                      .vocab_size = 95},
                                             .eos_token_ids = {0}};
    ReplicaSetOptions options;
    options.replicas.push_back({.index = 0,
                                .make_executor = [simulated, setup](uint64_t)
                                    -> absl::StatusOr<std::unique_ptr<Executor>> {
                                  if (setup.broken || (setup.startable && !*setup.startable)) {
                                    return absl::UnavailableError("no device");
                                  }
                                  return std::make_unique<SleepyExecutor>(simulated, setup.step);
                                },
                                .engine = {.max_num_seqs = setup.max_num_seqs,
                                           .max_model_len = kMaxModelLen,
                                           .max_waiting_requests = setup.max_waiting_requests},
                                .tokenizer = &CharTokenizer(),
                                .eos_token_ids = {0},
                                .health_interval = absl::Milliseconds(50)});
    options.admission_wait = setup.admission_wait;
    replicas_ = std::make_unique<ReplicaSet>(std::move(options));
    if (!setup.broken && !setup.startable) {
      EXPECT_TRUE(replicas_->WaitUntilReady(1, absl::Seconds(30)));
    }
    frontend_ = std::make_unique<Frontend>(
        replicas_.get(), &CharTokenizer(),
        FrontendOptions{.model_name = kModel,
                        .limits = {.max_model_len = kMaxModelLen, .vocab_size = 95}});
    setup.http.host = "127.0.0.1";
    setup.http.port = 0;
    server_ = std::make_unique<HttpServer>(frontend_.get(), setup.chat_template, setup.http);
    EXPECT_TRUE(server_->Start().ok());
  }

  ~TestRouter() {
    server_->Stop();
    server_.reset();
    frontend_.reset();
    replicas_.reset();
  }

  httplib::Client Client() const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(30, 0);
    return client;
  }

  httplib::Result Post(const std::string& path, const std::string& body) const {
    return Client().Post(path.c_str(), body, "application/json");
  }

  Frontend& frontend() { return *frontend_; }
  ReplicaSet& replicas() { return *replicas_; }
  ReplicaStatus status() const { return replicas_->replica(0).status(); }

 private:
  std::unique_ptr<ReplicaSet> replicas_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<HttpServer> server_;
};

json Body(const httplib::Result& result) {
  return result ? json::parse(result->body, nullptr, false) : json();
}

// The events of an SSE body, up to [DONE] (which must come last).
std::vector<json> SseEvents(const std::string& body) {
  std::vector<json> events;
  bool done = false;
  for (absl::string_view block : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    EXPECT_FALSE(done) << "event after [DONE]";
    if (absl::StartsWith(block, ":")) continue;  // keep-alive comment
    EXPECT_TRUE(absl::StartsWith(block, "data: ")) << block;
    const std::string data(block.substr(6));
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    events.push_back(json::parse(data));
  }
  EXPECT_TRUE(done);
  return events;
}

void ExpectServes(const TestRouter& router) {
  httplib::Result ok = router.Post("/v1/completions", R"({"prompt": "abc", "max_tokens": 2})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

void ExpectError(const httplib::Result& result, int status, const std::string& param = "") {
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, status) << result->body;
  const json body = Body(result);
  ASSERT_TRUE(body.contains("error")) << result->body;
  EXPECT_EQ(body["error"]["code"], status);
  EXPECT_TRUE(body["error"]["message"].is_string());
  if (!param.empty()) {
    EXPECT_EQ(body["error"]["param"], param) << result->body;
  }
}

TEST(HttpServer, CompletesAPrompt) {
  TestRouter router({});
  httplib::Result result =
      router.Post("/v1/completions", R"({"model": "sim", "prompt": "hello", "max_tokens": 5})");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = Body(result);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], kModel);
  EXPECT_TRUE(absl::StartsWith(body["id"].get<std::string>(), "cmpl-"));
  ASSERT_EQ(body["choices"].size(), 1u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["text"].get<std::string>().size(), 5u);
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(body["usage"],
            json({{"prompt_tokens", 5}, {"completion_tokens", 5}, {"total_tokens", 10}}));
}

TEST(HttpServer, GivesEachPromptItsChoicesWithConsecutiveIndexes) {
  TestRouter router({});
  httplib::Result result = router.Post(
      "/v1/completions", R"({"prompt": ["ab", [1, 2, 3]], "n": 2, "max_tokens": 3, "echo": true,
                             "logprobs": 1, "seed": 7})");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = Body(result);
  ASSERT_EQ(body["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& choice = body["choices"][i];
    EXPECT_EQ(choice["index"], i);
    EXPECT_EQ(choice["text"].get<std::string>().substr(0, i < 2 ? 2 : 3), i < 2 ? "ab" : "!\"#");
    EXPECT_EQ(choice["logprobs"]["tokens"].size(), 3u);
    EXPECT_EQ(choice["logprobs"]["text_offset"][0], i < 2 ? 2 : 3);
  }
  EXPECT_EQ(body["usage"]["prompt_tokens"], 2 + 3);
  EXPECT_EQ(body["usage"]["completion_tokens"], 4 * 3);
}

TEST(HttpServer, StreamsInterleavedChoicesUntilDone) {
  TestRouter router({});
  httplib::Result result =
      router.Post("/v1/completions", R"({"prompt": "hi", "n": 2, "max_tokens": 6, "stream": true,
                             "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/event-stream");
  const std::vector<json> events = SseEvents(result->body);
  ASSERT_GE(events.size(), 2u);
  std::string texts[2];
  int finished = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "text_completion");
    EXPECT_TRUE(events[i]["usage"].is_null());
    for (const json& choice : events[i]["choices"]) {
      texts[choice["index"].get<int>()] += choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) ++finished;
    }
  }
  EXPECT_EQ(texts[0].size(), 6u);
  EXPECT_EQ(texts[1].size(), 6u);
  EXPECT_EQ(finished, 2);
  const json& last = events.back();
  EXPECT_EQ(last["choices"], json::array());
  EXPECT_EQ(last["usage"],
            json({{"prompt_tokens", 2}, {"completion_tokens", 12}, {"total_tokens", 14}}));
}

TEST(HttpServer, AnswersBadRequestsInOpenAIShapeAndKeepsServing) {
  TestRouter router({});
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "max_tokens": "ten"})"), 400,
              "max_tokens");
  ExpectServes(router);
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "stop": 5})"), 400, "stop");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "max_tokens": 0})"), 400,
              "max_tokens");
  ExpectError(router.Post("/v1/completions", R"({"prompt": [1000]})"), 400, "prompt");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a)"), 400);
  ExpectError(router.Post("/v1/completions", "{\"prompt\": \"\xc3\x28\"}"), 400);
  ExpectServes(router);
  ExpectError(router.Post("/v1/completions", R"({"model": "gpt-4", "prompt": "a"})"), 404, "");
  ExpectError(router.Client().Get("/v1/nothing"), 404);
  ExpectError(router.Client().Get("/v1/completions"), 405);
  ExpectError(router.Post("/v1/models", "{}"), 405);
  ExpectServes(router);
  // This router has no chat template: chat completions cannot be rendered.
  ExpectError(
      router.Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})"),
      400);
  ExpectServes(router);
}

TEST(HttpServer, RefusesBodiesOverTheLimit) {
  TestRouter router({.http = {.max_request_bytes = 1024}});
  const std::string big = absl::StrCat(R"({"prompt": ")", std::string(4096, 'a'), R"("})");
  ExpectError(router.Post("/v1/completions", big), 413);
  ExpectServes(router);
  // A client that sends all of a body far larger than the socket buffers before it reads (as
  // urllib, requests and httpx do) still gets the 413, not a reset connection mid-upload.
  const std::string huge(size_t{24} << 20, 'a');
  httplib::Result result = router.Post("/v1/completions", huge);
  ExpectError(result, 413);
  EXPECT_THAT(Body(result)["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("over 1024 bytes"));
  ExpectServes(router);
}

TEST(HttpServer, RefusesAWrongApiKeyAfterReadingTheBody) {
  const std::unique_ptr<ApiKeys> keys = ApiKeys::Create("sesame", "").value();
  TestRouter router({.http = {.api_keys = keys.get()}});
  const std::string body =
      absl::StrCat(R"({"prompt": ")", std::string(size_t{12} << 20, 'a'), R"("})");
  ExpectError(router.Post("/v1/completions", body), 401);
  ExpectError(router.Post("/v1/chat/completions", body), 401);
}

TEST(HttpServer, ChecksTheApiKey) {
  const std::unique_ptr<ApiKeys> keys = ApiKeys::Create("sesame", "").value();
  TestRouter router({.http = {.api_keys = keys.get()}});
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a"})"), 401);
  httplib::Client client = router.Client();
  client.set_bearer_token_auth("wrong");
  ExpectError(client.Get("/v1/models"), 401);
  client.set_bearer_token_auth("sesame");
  httplib::Result ok =
      client.Post("/v1/completions", R"({"prompt": "a", "max_tokens": 1})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  // Health checks need no key.
  httplib::Result health = router.Client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(HttpServer, GuardsProbesAndMetricsWhenAsked) {
  const std::unique_ptr<ApiKeys> keys = ApiKeys::Create("sesame", "").value();
  TestRouter router({.http = {.api_keys = keys.get(), .keys_guard_probes = true, .metrics = [] {
                                return std::string("pagoda_up 1\n");
                              }}});
  for (const char* path : {"/health", "/ready", "/metrics"}) {
    ExpectError(router.Client().Get(path), 401);
    httplib::Client client = router.Client();
    client.set_bearer_token_auth("sesame");
    httplib::Result ok = client.Get(path);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << path;
  }
}

TEST(HttpServer, AnswersQueueFullWith429) {
  TestRouter router({.step = absl::Milliseconds(20), .max_num_seqs = 1, .max_waiting_requests = 1});
  SamplingParams params;
  params.max_tokens = 1000;
  std::vector<std::unique_ptr<RequestSession>> held;
  for (int i = 0; i < 2; ++i) {
    auto session = router.frontend().Submit({.text = "abc", .params = params});
    ASSERT_TRUE(session.ok()) << session.status();
    held.push_back(std::move(*session));
    // Let the engine take the first one in, so the second one waits.
    absl::SleepFor(absl::Milliseconds(100));
  }
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a"})"), 429);
  held.clear();  // aborts them
  absl::SleepFor(absl::Milliseconds(200));
  ExpectServes(router);
}

TEST(HttpServer, AnswersNoReadyReplicaWith503) {
  TestRouter router({.broken = true});
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a"})"), 503);
  ExpectError(router.Client().Get("/health"), 503);
  httplib::Result ready = router.Client().Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(Body(ready)["ready"], false);
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a"})"), 503);
}

TEST(HttpServer, HoldsANewRequestUntilAReplicaIsReady) {
  auto startable = std::make_shared<std::atomic<bool>>(false);
  TestRouter router({.startable = startable, .admission_wait = absl::Seconds(60)});
  std::future<httplib::Result> held = std::async(std::launch::async, [&router] {
    return router.Post("/v1/completions", R"({"prompt": "abc", "max_tokens": 2})");
  });
  absl::SleepFor(absl::Milliseconds(300));
  ExpectError(router.Client().Get("/health"), 503);  // still none: the request is waiting
  *startable = true;
  const httplib::Result result = held.get();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(Body(result)["usage"]["completion_tokens"], 2);
}

TEST(HttpServer, GivesUpAfterTheAdmissionWaitNamingIt) {
  TestRouter router({.broken = true, .admission_wait = absl::Milliseconds(300)});
  const httplib::Result result = router.Post("/v1/completions", R"({"prompt": "a"})");
  ExpectError(result, 503);
  EXPECT_THAT(Body(result)["error"]["message"].get<std::string>(),
              ::testing::AllOf(::testing::HasSubstr("no replica is ready"),
                               ::testing::HasSubstr("--admission-wait-s")));
}

TEST(HttpServer, DrainingEndsTheAdmissionWait) {
  TestRouter router({.broken = true, .admission_wait = absl::Seconds(60)});
  std::future<httplib::Result> held = std::async(std::launch::async, [&router] {
    return router.Post("/v1/completions", R"({"prompt": "abc", "max_tokens": 2})");
  });
  absl::SleepFor(absl::Milliseconds(300));
  router.replicas().StopAdmitting();
  const httplib::Result result = held.get();
  ExpectError(result, 503);
  EXPECT_THAT(Body(result)["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("shutting down"));
}

TEST(HttpServer, DrainingRefusesNewRequestsAndFinishesLiveOnes) {
  TestRouter router({.step = absl::Milliseconds(5)});
  SamplingParams params;
  params.max_tokens = 40;
  params.ignore_eos = true;
  auto live = router.frontend().Submit({.text = "abc", .params = params});
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(router.replicas().num_live_requests(), 1);

  router.replicas().StopAdmitting();
  httplib::Result refused = router.Post("/v1/completions", R"({"prompt": "a"})");
  ExpectError(refused, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_THAT(Body(refused)["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("shutting down"));
  httplib::Result ready = router.Client().Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);

  // The request admitted before the drain runs to its end.
  int64_t tokens = 0;
  bool finished = false;
  while (!finished) {
    std::optional<RequestOutput> output = (*live)->Next(absl::Seconds(30));
    ASSERT_TRUE(output.has_value());
    for (const CompletionOutput& out : output->outputs) {
      tokens += static_cast<int64_t>(out.token_ids.size());
    }
    finished = output->finished;
  }
  EXPECT_EQ(tokens, 40);
  live->reset();
  EXPECT_EQ(router.replicas().num_live_requests(), 0);
}

TEST(HttpServer, ClientDisconnectMidStreamFreesTheRequest) {
  TestRouter router({.step = absl::Milliseconds(5)});
  httplib::Client client = router.Client();
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/completions";
  request.body = R"({"prompt": "abc", "max_tokens": 1500, "stream": true})";
  request.set_header("Content-Type", "application/json");
  int chunks = 0;
  request.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    return ++chunks < 3;  // then hang up
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  EXPECT_FALSE(client.send(request, response, error));
  EXPECT_EQ(chunks, 3);
  client.stop();
  // Left alone, the request would run for 1500 steps of 5 ms.
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while (router.status().stats.num_running_requests > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(router.status().stats.num_running_requests, 0);
  EXPECT_EQ(router.status().stats.num_waiting_requests, 0);
  ExpectServes(router);
}

// The request's own `timeout` (seconds): past it, a whole answer is a 408 naming the field, a
// stream ends with a 408 error event, and either way the request is aborted and freed.
TEST(HttpServer, ATimeoutAbortsTheRequestAndFreesIt) {
  TestRouter router({.step = absl::Milliseconds(5)});
  // Left alone, each would run for 1500 steps of 5 ms.
  httplib::Result whole =
      router.Post("/v1/completions",
                  R"({"prompt": "abc", "max_tokens": 1500, "ignore_eos": true, "timeout": 0.3})");
  ExpectError(whole, 408, "timeout");
  EXPECT_THAT(Body(whole)["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("past its 0.3 s timeout"));
  httplib::Result streamed =
      router.Post("/v1/completions",
                  R"({"prompt": "abc", "max_tokens": 1500, "ignore_eos": true, "timeout": 0.3,
          "stream": true})");
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  const std::vector<json> events = SseEvents(streamed->body);
  ASSERT_GE(events.size(), 2u) << streamed->body;  // some tokens, then the error
  EXPECT_TRUE(events.front().contains("choices")) << events.front();
  EXPECT_EQ(events.back()["error"]["code"], 408) << events.back();
  // Freed (the stream's session goes once the server lets go of its content provider).
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while ((router.status().stats.num_running_requests > 0 ||
          router.replicas().num_live_requests() > 0) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(router.status().stats.num_running_requests, 0);
  EXPECT_EQ(router.replicas().num_live_requests(), 0);
  // A timeout the request does not reach changes nothing.
  httplib::Result in_time =
      router.Post("/v1/completions", R"({"prompt": "abc", "max_tokens": 3, "timeout": 60})");
  ASSERT_TRUE(in_time);
  EXPECT_EQ(in_time->status, 200) << in_time->body;
  for (const char* bad : {R"(0)", R"(-1)", R"(86401)", R"("soon")"}) {
    ExpectError(
        router.Post("/v1/completions", absl::StrCat(R"({"prompt": "a", "timeout": )", bad, "}")),
        400, "timeout");
  }
}

TEST(HttpServer, ServesModelsReadinessAndMetrics) {
  TestRouter router({.http = {.metrics = [] { return std::string("pagoda_up 1\n"); }}});
  const json models = Body(router.Client().Get("/v1/models"));
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], kModel);
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["owned_by"], "pagoda");
  EXPECT_EQ(models["data"][0]["max_model_len"], kMaxModelLen);
  httplib::Result ready = router.Client().Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(Body(ready)["ready"], true);
  EXPECT_EQ(Body(ready)["replicas"][0]["state"], "ready");
  httplib::Result metrics = router.Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->body, "pagoda_up 1\n");
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4");

  TestRouter no_metrics({});
  ExpectError(no_metrics.Client().Get("/metrics"), 404);
}

const ChatTemplate& TestChatTemplate() {
  static const ChatTemplate* chat_template = [] {
    auto parsed = ChatTemplate::Parse(
        "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
        "{% if enable_thinking is defined and enable_thinking is false %}<nothink>{% endif %}");
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return new ChatTemplate(std::move(*parsed));
  }();
  return *chat_template;
}

// The context length /v1/models reports (vLLM's max_model_len) is the one requests are held to:
// a prompt of max_model_len - 1 tokens leaves room for exactly one more.
TEST(HttpServer, ModelsReportTheContextLengthRequestsAreHeldTo) {
  TestRouter router({});
  const json models = Body(router.Client().Get("/v1/models"));
  ASSERT_EQ(models["data"].size(), 1u);
  const int64_t max_model_len = models["data"][0]["max_model_len"].get<int64_t>();
  ASSERT_EQ(max_model_len, kMaxModelLen);
  // One token per character (CharTokenizer, no BOS).
  const std::string prompt(static_cast<size_t>(max_model_len - 1), 'a');
  auto request = [&](const std::string& text, int64_t max_tokens) {
    return json{{"model", kModel}, {"prompt", text}, {"max_tokens", max_tokens}}.dump();
  };
  const json fits = Body(router.Post("/v1/completions", request(prompt, 1)));
  EXPECT_EQ(fits["usage"]["prompt_tokens"], max_model_len - 1) << fits.dump();
  EXPECT_EQ(fits["usage"]["completion_tokens"], 1) << fits.dump();
  ExpectError(router.Post("/v1/completions", request(prompt, 2)), 400, "max_tokens");
  // A prompt of max_model_len tokens leaves none.
  ExpectError(router.Post("/v1/completions", request(prompt + "a", 1)), 400);
}

TEST(HttpServer, CompletesAChat) {
  TestRouter router({.chat_template = &TestChatTemplate()});
  httplib::Result result = router.Post("/v1/chat/completions",
                                       R"({"model": "sim",
          "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
          "max_completion_tokens": 4, "logprobs": true, "top_logprobs": 2})");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = Body(result);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_TRUE(absl::StartsWith(body["id"].get<std::string>(), "chatcmpl-"));
  ASSERT_EQ(body["choices"].size(), 1u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"].get<std::string>().size(), 4u);
  EXPECT_EQ(choice["finish_reason"], "length");
  ASSERT_EQ(choice["logprobs"]["content"].size(), 4u);
  EXPECT_EQ(choice["logprobs"]["content"][0]["top_logprobs"].size(), 2u);
  // "<user>hi<assistant>", one token per character, no BOS added on top.
  EXPECT_EQ(body["usage"]["prompt_tokens"], 19);

  // vLLM's chat_template_kwargs reach the template (Qwen3's enable_thinking): 9 more tokens.
  const json no_thinking = Body(router.Post("/v1/chat/completions", R"({"max_tokens": 1,
      "messages": [{"role": "user", "content": "hi"}],
      "chat_template_kwargs": {"enable_thinking": false}})"));
  EXPECT_EQ(no_thinking["usage"]["prompt_tokens"], 19 + 9) << no_thinking.dump();
  ExpectError(router.Post("/v1/chat/completions",
                          R"({"messages": [{"role": "user", "content": "hi"}],
                              "chat_template_kwargs": {"add_generation_prompt": false}})"),
              400, "chat_template_kwargs");
  ExpectError(router.Post("/v1/chat/completions",
                          R"({"messages": [{"role": "user", "content": "hi"}],
                              "chat_template_kwargs": [1]})"),
              400, "chat_template_kwargs");

  // Without max_tokens a chat may use the rest of the context, as in vLLM.
  const json rest = Body(
      router.Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})"));
  EXPECT_EQ(rest["usage"]["completion_tokens"], kMaxModelLen - 19) << rest.dump();
}

// best_of: best_of candidates are sampled, the n with the highest cumulative logprob come back
// best first with indexes 0..n-1, and usage counts every candidate's tokens.
TEST(HttpServer, BestOfReturnsTheHighestCumulativeLogprobsInOrder) {
  TestRouter router({.chat_template = &TestChatTemplate()});
  const auto sum = [](const json& choice) {
    double total = 0;
    for (const json& logprob : choice["logprobs"]["token_logprobs"]) total += logprob.get<double>();
    return total;
  };
  // The same seed draws the same 4 samples: ranked by hand, they are what best_of must pick.
  const json all =
      Body(router.Post("/v1/completions",
                       R"({"prompt": "hi", "n": 4, "max_tokens": 6, "logprobs": 0, "seed": 11})"));
  ASSERT_EQ(all["choices"].size(), 4u) << all.dump();
  std::vector<std::pair<double, std::string>> ranked;
  for (const json& choice : all["choices"]) {
    ranked.emplace_back(sum(choice), choice["text"].get<std::string>());
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  ASSERT_GT(ranked[1].first, ranked[3].first) << "the samples' logprobs do not differ";

  const json best = Body(router.Post(
      "/v1/completions",
      R"({"prompt": "hi", "n": 2, "best_of": 4, "max_tokens": 6, "logprobs": 0, "seed": 11})"));
  ASSERT_EQ(best["choices"].size(), 2u) << best.dump();
  for (int i = 0; i < 2; ++i) {
    const json& choice = best["choices"][i];
    EXPECT_EQ(choice["index"], i);
    EXPECT_EQ(choice["text"], ranked[i].second);
    EXPECT_DOUBLE_EQ(sum(choice), ranked[i].first);
  }
  EXPECT_EQ(best["usage"]["completion_tokens"], 4 * 6);

  // Without logprobs asked the ranking still happens, and no logprobs come back.
  const json plain = Body(router.Post(
      "/v1/completions", R"({"prompt": "hi", "n": 2, "best_of": 4, "max_tokens": 6, "seed": 11})"));
  ASSERT_EQ(plain["choices"].size(), 2u) << plain.dump();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(plain["choices"][i]["index"], i);
    EXPECT_EQ(plain["choices"][i]["text"], ranked[i].second);
    EXPECT_TRUE(plain["choices"][i]["logprobs"].is_null());
  }
  EXPECT_EQ(plain["usage"]["completion_tokens"], 4 * 6);

  // Chat takes best_of too (vLLM's ChatCompletionRequest has it).
  const json chat = Body(router.Post(
      "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "hi"}], "best_of": 3, "max_tokens": 4})"));
  ASSERT_EQ(chat["choices"].size(), 1u) << chat.dump();
  EXPECT_EQ(chat["choices"][0]["index"], 0);
  EXPECT_TRUE(chat["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(chat["usage"]["completion_tokens"], 3 * 4);

  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "best_of": 2, "stream": true})"),
              400, "best_of");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "n": 3, "best_of": 2})"), 400,
              "best_of");
  // Above --max-n (16 here) the candidates are refused naming best_of, not n.
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "best_of": 17})"), 400, "best_of");
  ExpectServes(router);
}

// vLLM's /tokenize and /detokenize: a text prompt or chat messages in, ids (and their texts)
// out, and back.
TEST(HttpServer, TokenizesAndDetokenizesAsVllmDoes) {
  TestRouter router({.chat_template = &TestChatTemplate()});
  json body = Body(router.Post("/tokenize", R"({"model": "sim", "prompt": "abc"})"));
  EXPECT_EQ(body, json::parse(R"({"count": 3, "max_model_len": 2048, "tokens": [65, 66, 67],
                                  "token_strs": null})"));
  body = Body(router.Post("/tokenize", R"({"prompt": "a c", "return_token_strs": true})"));
  EXPECT_EQ(body["token_strs"], json::parse(R"(["a", " ", "c"])"));
  // The chat form renders the template as chat completions do: the same 19 prompt tokens.
  body = Body(router.Post("/tokenize", R"({"messages": [{"role": "user", "content": "hi"}]})"));
  EXPECT_EQ(body["count"], 19);
  const json back = Body(router.Post("/detokenize", json({{"tokens", body["tokens"]}}).dump()));
  EXPECT_EQ(back, json({{"prompt", "<user>hi<assistant>"}}));
  body = Body(router.Post("/tokenize", R"({"messages": [{"role": "user", "content": "hi"}],
                                           "add_generation_prompt": false})"));
  EXPECT_EQ(body["count"], 8);
  body = Body(router.Post("/tokenize", R"({"messages": [{"role": "user", "content": "hi"}],
                                           "chat_template_kwargs": {"enable_thinking": false}})"));
  EXPECT_EQ(body["count"], 19 + 9);
  ExpectError(router.Post("/tokenize", R"({"prompt": "a", "chat_template_kwargs": {}})"), 400,
              "chat_template_kwargs");

  // Bad input: 400 naming the field (404 for another model), and the server keeps serving.
  ExpectError(router.Post("/tokenize", "{}"), 400, "prompt");
  ExpectError(router.Post("/tokenize", R"({"prompt": "a", "messages": []})"), 400, "prompt");
  ExpectError(router.Post("/tokenize", R"({"prompt": 5})"), 400, "prompt");
  ExpectError(router.Post("/tokenize", R"({"prompt": "a", "tools": []})"), 400, "tools");
  ExpectError(router.Post("/tokenize", R"({"prompt": "a", "temperature": 1})"), 400, "temperature");
  ExpectError(router.Post("/tokenize", R"({"messages": [{"content": "x"}]})"), 400, "messages");
  ExpectError(router.Post("/tokenize", R"({"model": "other", "prompt": "a"})"), 404, "model");
  ExpectError(router.Post("/tokenize", "[1"), 400);
  ExpectError(router.Post("/detokenize", "{}"), 400, "tokens");
  ExpectError(router.Post("/detokenize", R"({"tokens": [95]})"), 400, "tokens");
  ExpectError(router.Post("/detokenize", R"({"tokens": [-1]})"), 400, "tokens");
  ExpectError(router.Post("/detokenize", R"({"tokens": [1.5]})"), 400, "tokens");
  ExpectError(router.Post("/detokenize", R"({"tokens": "abc"})"), 400, "tokens");
  ExpectError(router.Client().Get("/tokenize"), 405);
  ExpectServes(router);

  // Without a chat template only the prompt form works.
  TestRouter plain({});
  ExpectError(plain.Post("/tokenize", R"({"messages": [{"role": "user", "content": "hi"}]})"), 400,
              "messages");
  EXPECT_EQ(Body(plain.Post("/tokenize", R"({"prompt": "a"})"))["count"], 1);
}

TEST(HttpServer, ApiKeysGuardTokenizeToo) {
  const std::unique_ptr<ApiKeys> keys = ApiKeys::Create("sesame", "").value();
  TestRouter router({.http = {.api_keys = keys.get()}});
  ExpectError(router.Post("/tokenize", R"({"prompt": "a"})"), 401);
  ExpectError(router.Post("/detokenize", R"({"tokens": [1]})"), 401);
  httplib::Client client = router.Client();
  client.set_bearer_token_auth("sesame");
  httplib::Result ok = client.Post("/tokenize", R"({"prompt": "a"})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(HttpServer, CompilesStructuredOutputsBeforeAdmittingAndNamesTheField) {
  TestRouter router({.chat_template = &TestChatTemplate()});
  // Valid constraints are admitted (the simulated engine does not follow them).
  for (
      const char* body : {
          R"({"prompt": "a", "max_tokens": 3, "response_format": {"type": "json_object"}})",
          R"({"prompt": "a", "max_tokens": 3, "response_format": {"type": "json_schema",
               "json_schema": {"name": "p", "strict": true, "schema": {"type": "object",
               "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}})",
          R"({"prompt": "a", "max_tokens": 3, "guided_regex": "[a-z]+"})",
          R"({"prompt": "a", "max_tokens": 3, "guided_choice": ["yes", "no"]})",
          R"({"prompt": "a", "max_tokens": 3, "structured_outputs": {"grammar": "root ::= \"x\"+"}})",
      }) {
    httplib::Result result = router.Post("/v1/completions", body);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 200) << body << " -> " << result->body;
  }
  // An unsupported keyword, an invalid schema, an invalid regex, a grammar accepting nothing.
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "response_format":
                  {"type": "json_schema", "json_schema": {"name": "p", "schema":
                  {"type": "object", "properties": {"x": {"type": "integer", "multipleOf": 3}}}}}})"),
              400, "response_format");
  const json unsupported = Body(router.Post("/v1/completions", R"({"prompt": "a",
      "guided_json": {"type": "integer", "multipleOf": 3}})"));
  EXPECT_THAT(unsupported["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("multipleOf"))
      << unsupported.dump();
  EXPECT_EQ(unsupported["error"]["param"], "guided_json");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "guided_json": "{\"type\": 5}"})"),
              400, "guided_json");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "guided_regex": "(ab"})"), 400,
              "guided_regex");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "guided_grammar":
                  "root ::= \"a\" root"})"),
              400, "guided_grammar");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a",
                  "structured_outputs": {"grammar": "root ::= ["}})"),
              400, "structured_outputs");
  ExpectServes(router);
  // The chat endpoint compiles too; beam search is refused with a constraint.
  ExpectError(router.Post("/v1/chat/completions", R"({"messages": [{"role": "user",
                  "content": "hi"}], "response_format": {"type": "json_schema", "json_schema":
                  {"name": "p", "schema": {"type": "strin"}}}})"),
              400, "response_format");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "guided_choice": ["a", "b"],
                  "use_beam_search": true, "n": 2})"),
              400, "guided_choice");
  httplib::Result chat = router.Post("/v1/chat/completions", R"({"messages": [{"role": "user",
      "content": "hi"}], "max_tokens": 2, "response_format": {"type": "json_object"}})");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 200) << chat->body;
  // Compiled once per distinct constraint: a repeat is a cache hit.
  const int64_t hits = router.frontend().grammar_cache_stats().hits;
  ASSERT_TRUE(router.Post("/v1/completions",
                          R"({"prompt": "b", "max_tokens": 1, "guided_choice": ["yes", "no"]})"));
  EXPECT_EQ(router.frontend().grammar_cache_stats().hits, hits + 1);
  ExpectServes(router);
}

TEST(HttpServer, StreamsAChatWithTheRoleFirst) {
  TestRouter router({.chat_template = &TestChatTemplate()});
  httplib::Result result =
      router.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "hi"}], "n": 2, "max_tokens": 5,
          "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const std::vector<json> events = SseEvents(result->body);
  ASSERT_GE(events.size(), 3u);
  ASSERT_EQ(events[0]["choices"].size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  std::string texts[2];
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    for (const json& choice : events[i]["choices"]) {
      texts[choice["index"].get<int>()] += choice["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_EQ(texts[0].size(), 5u);
  EXPECT_EQ(texts[1].size(), 5u);
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 10);
}

TEST(HttpServer, RefusesChatsTheTemplateRejects) {
  auto strict = ChatTemplate::Parse(
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}x");
  ASSERT_TRUE(strict.ok()) << strict.status();
  TestRouter router({.chat_template = &*strict});
  ExpectError(
      router.Post("/v1/chat/completions", R"({"messages": [{"role": "system", "content": "hi"}]})"),
      400, "messages");
  ExpectServes(router);
}

TEST(HttpServer, ToolsReachTheTemplateAndEnforcedChoicesCompile) {
  auto with_tools = ChatTemplate::Parse(
      "{% if tools %}[{{ tools | length }} tools]{% endif %}"
      "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>");
  ASSERT_TRUE(with_tools.ok()) << with_tools.status();
  TestRouter router({.chat_template = &*with_tools});
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}])";
  const std::string messages = R"("messages": [{"role": "user", "content": "hi"}])";
  auto chat = [&](const std::string& fields) {
    return router.Post("/v1/chat/completions", absl::StrCat("{", messages, ", ", tools,
                                                            ", \"max_tokens\": 3", fields, "}"));
  };
  // "[1 tools]<user>hi<assistant>": one token per character.
  const json offered = Body(chat(""));
  EXPECT_EQ(offered["usage"]["prompt_tokens"], 28) << offered.dump();
  // The simulated engine does not follow the grammar: its text is content, not a call.
  EXPECT_FALSE(offered["choices"][0]["message"].contains("tool_calls")) << offered.dump();
  for (const char* fields : {R"(, "tool_choice": "required")", R"(, "tool_choice": "none")",
                             R"(, "tool_choice": {"type": "function", "function": {"name": "f"}})",
                             R"(, "tool_choice": "required", "stream": true)"}) {
    httplib::Result result = chat(fields);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 200) << fields << " -> " << result->body;
  }
  ExpectError(chat(R"(, "tool_choice": "required", "guided_regex": "a")"), 400, "tool_choice");
  ExpectError(chat(R"(, "tool_choice": {"type": "function", "function": {"name": "g"}})"), 400,
              "tool_choice");
  ExpectError(router.Post("/v1/chat/completions",
                          absl::StrCat("{", messages, R"(, "tools": [{"type": "function",
                              "function": {"name": "f", "parameters": {"type": "object",
                              "patternProperties": {}}}}]})")),
              400, "tools");
  ExpectError(chat(R"(, "functions": [])"), 400, "functions");
  ExpectError(router.Post("/v1/completions", R"({"prompt": "a", "suffix": "b"})"), 400, "suffix");
  ExpectServes(router);
}

}  // namespace
}  // namespace pagoda
