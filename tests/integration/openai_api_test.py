"""The OpenAI-compatible HTTP API of a real `pagoda serve` cluster (2 replicas x TP 2, stories260K),
driven by the official `openai` Python client, curl and raw HTTP: completions and chat
completions (JSON and SSE), n = 2, logprobs, golden greedy outputs, client disconnects, and one
test per error row of docs/api.md, each followed by a request that must still succeed.

Run by ctest: .venv/bin/python openai_api_test.py --bin-dir B --source-dir S --shared-dir D
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.client import HTTPConnection

import jinja2
import openai
import requests

import pagoda_cluster
from pagoda_cluster import PagodaCluster, http

API_KEY = "sesame"
MODEL = "stories260K"
MAX_REQUEST_BYTES = 1 << 20


def auth():
    return {"Authorization": f"Bearer {API_KEY}"}


def sse_events(lines):
    """The JSON events of an SSE stream (list of text lines) and whether it ended with [DONE]."""
    events, done = [], False
    for line in lines:
        if not line.startswith("data: "):
            continue
        payload = line[len("data: "):]
        if payload == "[DONE]":
            done = True
        else:
            events.append(json.loads(payload))
    return events, done


class OpenAIApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template_path = os.path.join(pagoda_cluster.SOURCE_DIR, "tests", "data",
                                         "chat_templates", "smollm2.jinja")
        cls.cluster = PagodaCluster(
            replicas=2, tp=2,
            extra_args=["--api-key", API_KEY, "--chat-template", cls.template_path,
                        f"--router-flag=--max-request-bytes={MAX_REQUEST_BYTES}"])
        cls.client = openai.OpenAI(base_url=cls.cluster.http_url + "/v1", api_key=API_KEY,
                                   max_retries=0, timeout=120)
        cls.goldens = pagoda_cluster.load_goldens()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def post(self, path, body, headers=None):
        return http("POST", self.cluster.http_url + path, body,
                    headers=auth() if headers is None else headers)

    def assert_error(self, status, body, want_status, want_param=None):
        self.assertEqual(status, want_status, body)
        error = json.loads(body)["error"]
        self.assertEqual(set(error), {"message", "type", "param", "code"})
        self.assertEqual(error["code"], want_status)
        self.assertTrue(error["message"])
        if want_param is not None:
            self.assertEqual(error["param"], want_param)
        return error

    def assert_still_serving(self):
        completion = self.client.completions.create(model=MODEL, prompt="Once upon a time",
                                                    max_tokens=4, temperature=0)
        self.assertEqual(completion.usage.completion_tokens, 4)

    def golden_prompt(self, golden):
        # An empty text prompt is refused, so the unconditional golden goes as token ids [BOS].
        return golden["prompt"] if golden["prompt"] else golden["prompt_ids"]

    # --- the official client -------------------------------------------------------------

    def test_models_list(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(models.data[0].owned_by, "pagoda")
        self.assertEqual(models.data[0].model_extra["max_model_len"], 512)  # stories260K's

    def test_greedy_completions_match_golden(self):
        results = [None] * len(self.goldens)

        def run(i):
            golden = self.goldens[i]
            results[i] = self.client.completions.create(
                model=MODEL, prompt=self.golden_prompt(golden),
                max_tokens=len(golden["greedy_ids"]), temperature=0)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(self.goldens))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for golden, completion in zip(self.goldens, results):
            self.assertEqual(completion.choices[0].text, golden["greedy_text"], golden["prompt"])
            self.assertEqual(completion.usage.prompt_tokens, len(golden["prompt_ids"]))
            self.assertEqual(completion.usage.completion_tokens, len(golden["greedy_ids"]))
            self.assertEqual(completion.object, "text_completion")

    def test_prompt_list_gives_choices_in_order(self):
        goldens = [g for g in self.goldens if g["prompt"]][:3]
        completion = self.client.completions.create(
            model=MODEL, prompt=[g["prompt"] for g in goldens], max_tokens=12, temperature=0)
        self.assertEqual([c.index for c in completion.choices], [0, 1, 2])
        for golden, choice in zip(goldens, completion.choices):
            self.assertTrue(golden["greedy_text"].startswith(choice.text), choice.text)
        self.assertEqual(completion.usage.prompt_tokens,
                         sum(len(g["prompt_ids"]) for g in goldens))
        self.assertEqual(completion.usage.completion_tokens, 36)

    def test_streaming_completion_equals_non_streaming(self):
        golden = self.goldens[0]
        max_tokens = len(golden["greedy_ids"])
        stream = self.client.completions.create(
            model=MODEL, prompt=golden["prompt"], max_tokens=max_tokens, temperature=0,
            stream=True, stream_options={"include_usage": True})
        text, finish, usage, chunks = "", None, None, 0
        for chunk in stream:
            chunks += 1
            if chunk.choices:
                text += chunk.choices[0].text
                finish = chunk.choices[0].finish_reason or finish
            else:
                usage = chunk.usage
        self.assertGreater(chunks, 2)
        self.assertEqual(text, golden["greedy_text"])
        self.assertIn(finish, ("length", "stop"))
        self.assertEqual(usage.completion_tokens, max_tokens)
        self.assertEqual(usage.total_tokens, max_tokens + len(golden["prompt_ids"]))

    def test_chat_completion_equals_completion_of_rendered_template(self):
        messages = [{"role": "system", "content": "You tell short stories."},
                    {"role": "user", "content": "Tell me about a cat."}]
        with open(self.template_path) as f:
            rendered = jinja2.Environment().from_string(f.read()).render(
                messages=messages, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")
        chat = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                   max_tokens=20, temperature=0)
        completion = self.client.completions.create(
            model=MODEL, prompt=rendered, max_tokens=20, temperature=0,
            extra_body={"add_special_tokens": False})
        self.assertEqual(chat.object, "chat.completion")
        self.assertEqual(chat.choices[0].message.role, "assistant")
        self.assertEqual(chat.choices[0].message.content, completion.choices[0].text)
        self.assertEqual(chat.usage.prompt_tokens, completion.usage.prompt_tokens)
        self.assertEqual(chat.usage.completion_tokens, 20)
        self.assertEqual(chat.choices[0].finish_reason, "length")

    def test_tokenize_matches_the_prompts_the_server_runs(self):
        golden = next(g for g in self.goldens if g["prompt"])
        status, _, body = self.post("/tokenize", {"model": MODEL, "prompt": golden["prompt"],
                                                  "return_token_strs": True})
        self.assertEqual(status, 200, body)
        tokenized = json.loads(body)
        self.assertEqual(tokenized["tokens"], golden["prompt_ids"])
        self.assertEqual(tokenized["count"], len(golden["prompt_ids"]))
        self.assertEqual(tokenized["max_model_len"], 512)
        self.assertEqual(len(tokenized["token_strs"]), tokenized["count"])
        # Back to the text, BOS included (special tokens are kept).
        status, _, body = self.post("/detokenize", {"model": MODEL,
                                                    "tokens": tokenized["tokens"][1:]})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["prompt"].strip(), golden["prompt"].strip())
        # The chat form counts what a chat completion's usage reports.
        messages = [{"role": "user", "content": "Tell me about a cat."}]
        status, _, body = self.post("/tokenize", {"model": MODEL, "messages": messages})
        self.assertEqual(status, 200, body)
        chat = self.client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1,
                                                   temperature=0)
        self.assertEqual(json.loads(body)["count"], chat.usage.prompt_tokens)
        status, _, body = self.post("/detokenize", {"model": MODEL, "tokens": [10 ** 6]})
        self.assert_error(status, body, 400, "tokens")
        self.assert_still_serving()

    def test_logit_bias_and_allowed_token_ids_steer_the_tokens(self):
        def complete(prompt, **extra):
            return self.client.completions.create(model=MODEL, prompt=prompt, max_tokens=4,
                                                  temperature=0, extra_body=extra)
        golden = next(g for g in self.goldens if g["prompt"])
        plain = complete(golden["prompt"]).choices[0].text
        self.assertTrue(golden["greedy_text"].startswith(plain), plain)
        # +100 on one token forces it whatever the prompt, as does allowing only it.
        forced = [complete(prompt, logit_bias={"300": 100}).choices[0].text
                  for prompt in (golden["prompt"], "The dog")]
        self.assertEqual(forced[0], forced[1])
        self.assertNotEqual(forced[0], plain)
        self.assertEqual(complete("The dog", allowed_token_ids=[300]).choices[0].text, forced[0])
        # -100 on the greedy first token: another first token, so another text.
        banned = complete(golden["prompt"], logit_bias={str(golden["greedy_ids"][0]): -100})
        self.assertNotEqual(banned.choices[0].text, plain)
        for body, param in [({"logit_bias": {"1": 101}}, "logit_bias"),
                            ({"logit_bias": {"100000": 1}}, "logit_bias"),
                            ({"allowed_token_ids": [100000]}, "allowed_token_ids"),
                            ({"allowed_token_ids": []}, "allowed_token_ids"),
                            ({"logit_bias": {"1": 1}, "use_beam_search": True, "n": 2},
                             "logit_bias")]:
            status, _, response = self.post("/v1/completions",
                                            {"model": MODEL, "prompt": "Hi", **body})
            self.assert_error(status, response, 400, param)
        self.assert_still_serving()

    def test_bad_words_never_appear(self):
        def complete(**extra):
            return self.client.completions.create(
                model=MODEL, prompt=golden["prompt"], max_tokens=12, temperature=0,
                extra_body=extra).choices[0].text
        golden = next(g for g in self.goldens if g["prompt"] == "Once upon a time")
        plain = complete()
        self.assertTrue(golden["greedy_text"].startswith(plain), plain)
        # ", there was a little girl named Lily": its first word banned, another text without it.
        first_word = plain.split()[1]
        self.assertEqual(first_word, "there")
        banned = complete(bad_words=[first_word])
        self.assertNotEqual(banned, plain)
        self.assertNotIn(first_word, re.findall(r"\w+", banned))
        # Two tokens: "girl" is banned only right after "little"; the text up to it is the same.
        head = plain[:plain.index("little") + len("little")]
        two = complete(bad_words=["little girl"])
        self.assertTrue(two.startswith(head), two)
        self.assertNotEqual(two, plain)
        self.assertNotIn("little girl", two)
        # Chat completions read the field too; streaming gives the same text.
        messages = [{"role": "user", "content": "Once upon a time"}]
        chat = self.client.chat.completions.create(
            model=MODEL, messages=messages, max_completion_tokens=16, temperature=0,
            extra_body={"bad_words": ["the", "there"]}).choices[0].message.content
        self.assertNotIn("the", re.findall(r"\w+", chat))
        stream = self.client.chat.completions.create(
            model=MODEL, messages=messages, max_completion_tokens=16, temperature=0, stream=True,
            extra_body={"bad_words": ["the", "there"]})
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in stream if c.choices),
                         chat)
        for body in [{"bad_words": "there"}, {"bad_words": [""]}, {"bad_words": ["  "]},
                     {"bad_words": [1]}, {"bad_words": ["x" * 257]},
                     {"bad_words": ["w%d" % i for i in range(129)]},
                     {"bad_words": ["there"], "use_beam_search": True, "n": 2}]:
            for path, request in [("/v1/completions", {"prompt": "Hi"}),
                                  ("/v1/chat/completions", {"messages": messages})]:
                status, _, response = self.post(path, {"model": MODEL, **request, **body})
                self.assert_error(status, response, 400, "bad_words")
        # The token ids are the router's to fill, not a field of the API.
        status, _, response = self.post("/v1/completions", {
            "model": MODEL, "prompt": "Hi", "bad_words_token_ids": [[1]]})
        self.assert_error(status, response, 400, "bad_words_token_ids")
        self.assert_still_serving()

    def test_streaming_chat_equals_non_streaming(self):
        messages = [{"role": "user", "content": "Once upon a time"}]
        whole = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                    max_completion_tokens=16, temperature=0)
        stream = self.client.chat.completions.create(
            model=MODEL, messages=messages, max_completion_tokens=16, temperature=0,
            stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(content, whole.choices[0].message.content)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 16)
        self.assertTrue(all(c.object == "chat.completion.chunk" for c in chunks))

    def test_n2_with_seed_is_reproducible_and_samples_differ(self):
        def sample():
            return self.client.completions.create(model=MODEL, prompt="The little dog", n=2,
                                                  max_tokens=24, temperature=1.0, seed=1234,
                                                  extra_body={"ignore_eos": True})
        first, second = sample(), sample()
        self.assertEqual(sorted(c.index for c in first.choices), [0, 1])
        texts = {c.index: c.text for c in first.choices}
        self.assertEqual(texts, {c.index: c.text for c in second.choices})
        self.assertNotEqual(texts[0], texts[1])
        self.assertEqual(first.usage.completion_tokens, 48)

    def test_best_of_returns_the_most_likely_of_the_candidates(self):
        def create(**kwargs):
            return self.client.completions.create(model=MODEL, prompt="The little dog",
                                                  max_tokens=24, temperature=1.0, seed=1234,
                                                  extra_body={"ignore_eos": True}, **kwargs)
        # The same seed draws the same 3 samples: the best of them by cumulative logprob.
        samples = create(n=3, logprobs=0)
        self.assertEqual(len(samples.choices), 3)
        sums = {c.text: sum(c.logprobs.token_logprobs) for c in samples.choices}
        best_text = max(sums, key=sums.get)
        best = create(n=1, best_of=3, logprobs=0)
        self.assertEqual(len(best.choices), 1)
        self.assertEqual(best.choices[0].index, 0)
        self.assertEqual(best.choices[0].text, best_text)
        self.assertAlmostEqual(sum(best.choices[0].logprobs.token_logprobs), sums[best_text],
                               places=3)
        self.assertEqual(best.usage.completion_tokens, 3 * 24)  # every candidate is counted
        # Without logprobs asked: ranked the same, none returned.
        plain = create(n=2, best_of=3)
        self.assertEqual([c.index for c in plain.choices], [0, 1])
        self.assertEqual(plain.choices[0].text, best_text)
        self.assertIsNone(plain.choices[0].logprobs)
        self.assertEqual(plain.usage.completion_tokens, 3 * 24)
        for kwargs in [{"best_of": 3, "stream": True}, {"n": 2, "best_of": 1}]:
            with self.assertRaises(openai.BadRequestError) as raised:
                create(**kwargs)
            self.assertEqual(raised.exception.status_code, 400)
            self.assertEqual(raised.exception.body["param"], "best_of")
        self.assert_still_serving()

    def test_completion_logprobs(self):
        completion = self.client.completions.create(model=MODEL, prompt="Lily and Tom",
                                                    max_tokens=8, temperature=0, logprobs=3)
        logprobs = completion.choices[0].logprobs
        self.assertEqual(len(logprobs.tokens), 8)
        self.assertEqual(len(logprobs.token_logprobs), 8)
        self.assertEqual(len(logprobs.text_offset), 8)
        self.assertEqual(logprobs.text_offset[0], 0)
        for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs,
                                       logprobs.top_logprobs):
            self.assertLessEqual(logprob, 0.0)
            self.assertTrue(1 <= len(top) <= 4, top)  # 3 best, plus the sampled token
            # Greedy: the chosen token is the most likely one.
            self.assertAlmostEqual(logprob, max(top.values()), places=4)
            self.assertIn(token, top)

    def test_chat_logprobs(self):
        chat = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6,
            temperature=0, logprobs=True, top_logprobs=2)
        content = chat.choices[0].logprobs.content
        self.assertEqual(len(content), 6)
        for entry in content:
            self.assertEqual(len(entry.top_logprobs), 2)
            self.assertAlmostEqual(entry.logprob, entry.top_logprobs[0].logprob, places=4)
            self.assertEqual(bytes(entry.bytes).decode("utf-8", "replace"), entry.token)

    # --- curl and raw HTTP ---------------------------------------------------------------

    def test_curl_streams_server_sent_events(self):
        golden = self.goldens[1]
        body = json.dumps({"model": MODEL, "prompt": golden["prompt"], "max_tokens": 10,
                           "temperature": 0, "stream": True,
                           "stream_options": {"include_usage": True}})
        result = subprocess.run(
            ["curl", "-sS", "-N", "--fail-with-body", "-H", "Content-Type: application/json",
             "-H", f"Authorization: Bearer {API_KEY}", "-d", body,
             self.cluster.http_url + "/v1/completions"],
            capture_output=True, text=True, timeout=60, check=True)
        events, done = sse_events(result.stdout.splitlines())
        self.assertTrue(done, result.stdout)
        text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
        self.assertTrue(golden["greedy_text"].startswith(text), text)
        self.assertEqual(events[-1]["usage"]["completion_tokens"], 10)
        self.assertTrue(all(e["object"] == "text_completion" for e in events))

    def test_many_concurrent_streams_run_at_once(self):
        # Far more streams than cores: once every stream has its first tokens, all of them
        # must be in the engine together (none waiting for a server thread another holds).
        count, max_tokens = 24, 200
        running = []

        def record_running():
            samples = self.cluster.metrics()
            running.append(pagoda_cluster.metric_sum(samples, "pagoda:num_requests_running"))

        barrier = threading.Barrier(count, action=record_running, timeout=60)
        results = [None] * count

        def run(i):
            conn = HTTPConnection("127.0.0.1", self.cluster.http_port, timeout=120)
            try:
                conn.request("POST", "/v1/completions",
                             body=json.dumps({"model": MODEL, "prompt": f"Story {i}:",
                                              "max_tokens": max_tokens, "ignore_eos": True,
                                              "stream": True, "temperature": 0,
                                              "stream_options": {"include_usage": True}}),
                             headers={"Content-Type": "application/json", **auth()})
                response = conn.getresponse()
                lines = [response.readline().decode().rstrip("\n")]
                barrier.wait()
                lines += response.read().decode().splitlines()
                results[i] = (response.status, sse_events(lines))
            except Exception as error:  # reported by the main thread
                results[i] = repr(error)
            finally:
                conn.close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for result in results:
            self.assertIsInstance(result, tuple, result)
            status, (events, done) = result
            self.assertEqual(status, 200)
            self.assertTrue(done)
            self.assertEqual(events[-1]["usage"]["completion_tokens"], max_tokens)
        self.assertEqual(running, [count])

    def test_client_disconnect_mid_stream_aborts_and_frees_blocks(self):
        before = self.cluster.metrics()
        conn = HTTPConnection("127.0.0.1", self.cluster.http_port, timeout=30)
        conn.request("POST", "/v1/completions",
                     body=json.dumps({"model": MODEL, "prompt": "Once upon a time",
                                      "max_tokens": 480, "ignore_eos": True, "stream": True}),
                     headers={"Content-Type": "application/json", **auth()})
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        received = 0
        while received < 3:
            line = response.fp.readline().decode()
            received += line.startswith("data: ")
        conn.sock.shutdown(2)
        conn.close()
        deadline = time.time() + 30
        while True:
            samples = self.cluster.metrics()
            running = pagoda_cluster.metric_sum(samples, "pagoda:num_requests_running")
            kv = pagoda_cluster.metric_sum(samples, "pagoda:kv_cache_usage_perc")
            aborted = pagoda_cluster.metric_sum(samples, "pagoda:request_success_total",
                                                finished_reason="abort")
            was_aborted = pagoda_cluster.metric_sum(before, "pagoda:request_success_total",
                                                    finished_reason="abort")
            if running == 0 and kv == 0 and aborted == was_aborted + 1:
                break
            if time.time() > deadline:
                self.fail(f"after the disconnect: running {running}, KV usage {kv}, "
                          f"aborted {aborted - was_aborted}")
            time.sleep(0.1)
        # It stopped long before its 480 tokens.
        generated = (pagoda_cluster.metric_sum(samples, "pagoda:generation_tokens_total")
                     - pagoda_cluster.metric_sum(before, "pagoda:generation_tokens_total"))
        self.assertLess(generated, 480)
        self.assert_still_serving()

    # --- one test per error row ----------------------------------------------------------

    def test_400_invalid_field(self):
        for field, value in [("temperature", -1), ("top_p", 1.5), ("max_tokens", 0), ("n", 99),
                             ("top_logprobs", 3)]:
            body = {"model": MODEL, "prompt": "Hi", field: value}
            status, _, response = self.post("/v1/completions", body)
            if field == "top_logprobs":  # chat only: completions ignore it; check chat's
                status, _, response = self.post(
                    "/v1/chat/completions",
                    {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                     "top_logprobs": 3})
            error = self.assert_error(status, response, 400, field)
            self.assertEqual(error["type"], "invalid_request_error")
        with self.assertRaises(openai.BadRequestError) as raised:
            self.client.completions.create(model=MODEL, prompt="Hi", temperature=-1)
        self.assertEqual(raised.exception.status_code, 400)
        too_long = "Once upon a time " * 400  # far past the 512-token context
        status, _, response = self.post("/v1/completions", {"model": MODEL, "prompt": too_long})
        self.assert_error(status, response, 400, "prompt")
        self.assert_still_serving()

    def test_400_malformed_json(self):
        for body in [b'{"prompt": ', b"not json", b"[1, 2]", b""]:
            status, _, response = self.post("/v1/completions", body, {**auth()})
            self.assert_error(status, response, 400)
        self.assert_still_serving()

    def test_400_wrong_types(self):
        cases = [("max_tokens", "ten"), ("stop", 5), ("prompt", {"a": 1}), ("stream", "yes"),
                 ("temperature", "hot"), ("seed", 1.5)]
        for field, value in cases:
            body = {"model": MODEL, "prompt": "Hi", "max_tokens": 2, field: value}
            status, _, response = self.post("/v1/completions", body)
            self.assert_error(status, response, 400, field)
        status, _, response = self.post("/v1/chat/completions", {"model": MODEL, "messages": "hi"})
        self.assert_error(status, response, 400, "messages")
        self.assert_still_serving()

    def test_400_invalid_utf8(self):
        status, _, response = self.post("/v1/completions",
                                         b'{"prompt": "caf\xc3\x28 \xff", "max_tokens": 2}')
        self.assert_error(status, response, 400)
        self.assert_still_serving()

    def test_401_missing_or_wrong_key(self):
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}]:
            status, _, response = self.post("/v1/completions", {"prompt": "Hi"}, headers)
            self.assert_error(status, response, 401)
        bad_client = openai.OpenAI(base_url=self.cluster.http_url + "/v1", api_key="wrong",
                                   max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad_client.models.list()
        # Health, readiness and metrics need no key.
        for path in ["/health", "/ready", "/metrics"]:
            self.assertEqual(http("GET", self.cluster.http_url + path)[0], 200, path)
        self.assert_still_serving()

    def test_404_unknown_model_or_route(self):
        with self.assertRaises(openai.NotFoundError):
            self.client.completions.create(model="no-such-model", prompt="Hi", max_tokens=2)
        status, _, response = self.post("/v1/chat/completions",
                                        {"model": "gpt-4", "messages": [{"role": "user",
                                                                          "content": "Hi"}]})
        self.assert_error(status, response, 404, "model")
        status, _, response = http("GET", self.cluster.http_url + "/v1/nothing-here",
                                   headers=auth())
        self.assert_error(status, response, 404)
        self.assert_still_serving()

    def test_413_body_over_the_limit(self):
        # A body declared far beyond the limit (over 256 MiB) is refused from the headers alone:
        # send them, then read.
        conn = HTTPConnection("127.0.0.1", self.cluster.http_port, timeout=30)
        conn.putrequest("POST", "/v1/completions")
        for key, value in {"Content-Type": "application/json",
                           "Content-Length": str(1 << 30), **auth()}.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        self.assert_error(response.status, response.read(), 413)
        conn.close()
        # urllib and requests send the whole body before they read the answer: a body 16 times
        # the limit (far more than the socket buffers hold) must still get the 413, not a reset.
        big = b'{"prompt": "' + b"a" * (16 * MAX_REQUEST_BYTES) + b'"}'
        request = urllib.request.Request(self.cluster.http_url + "/v1/completions", data=big,
                                         headers={"Content-Type": "application/json", **auth()})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        self.assert_error(refused.exception.code, refused.exception.read(), 413)
        response = requests.post(self.cluster.http_url + "/v1/completions", data=big,
                                 headers={"Content-Type": "application/json", **auth()},
                                 timeout=60)
        self.assert_error(response.status_code, response.content, 413)
        # The same for a 401: the key is judged once the body has been read.
        request = urllib.request.Request(self.cluster.http_url + "/v1/chat/completions",
                                         data=big[: MAX_REQUEST_BYTES // 2] + b'"}',
                                         headers={"Content-Type": "application/json"})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        self.assert_error(refused.exception.code, refused.exception.read(), 401)
        # A body just under the limit is read and judged on its merits.
        body = json.dumps({"model": MODEL, "prompt": "a" * (MAX_REQUEST_BYTES - 100)}).encode()
        status, _, response = self.post("/v1/completions", body, {**auth()})
        self.assert_error(status, response, 400, "prompt")  # far too long for the context
        self.assert_still_serving()


class DrainTest(unittest.TestCase):
    """SIGTERM to the router: readiness goes false and new requests get 503 + Retry-After at once,
    the streams already running finish whole, then the router exits 0."""

    def test_sigterm_drains_live_streams(self):
        with PagodaCluster(replicas=1, tp=1,
                           extra_args=["--router-flag=--drain-timeout-s=120"]) as cluster:
            router_pid = cluster.state["router"]["pid"]
            started, results = threading.Semaphore(0), []
            lock = threading.Lock()

            def stream():
                body = json.dumps({"prompt": "Once upon a time", "max_tokens": 400, "n": 8,
                                   "ignore_eos": True, "stream": True}).encode()
                request = urllib.request.Request(cluster.http_url + "/v1/completions", data=body,
                                                 headers={"Content-Type": "application/json"})
                tokens, done = 0, False
                with urllib.request.urlopen(request, timeout=300) as response:
                    first = True
                    for raw in response:
                        line = raw.decode().strip()
                        if first and line.startswith("data: "):
                            started.release()
                            first = False
                        if line == "data: [DONE]":
                            done = True
                        elif line.startswith("data: "):
                            tokens += sum(1 for c in json.loads(line[6:])["choices"] if c["text"])
                with lock:
                    results.append((tokens, done))

            threads = [threading.Thread(target=stream) for _ in range(2)]
            for t in threads:
                t.start()
            for _ in threads:
                self.assertTrue(started.acquire(timeout=120))
            os.kill(router_pid, signal.SIGTERM)
            # Not ready within a moment, and new requests are refused with a retry hint.
            deadline = time.time() + 10
            while http("GET", cluster.http_url + "/ready", timeout=10)[0] != 503:
                self.assertLess(time.time(), deadline, "still ready after SIGTERM")
                time.sleep(0.02)
            status, headers, body = http("POST", cluster.http_url + "/v1/completions",
                                         {"prompt": "Hi", "max_tokens": 2})
            self.assertEqual(status, 503, body)
            self.assertEqual(dict(headers).get("Retry-After"), "1")
            self.assertIn("shutting down", json.loads(body)["error"]["message"])
            for t in threads:
                t.join(timeout=300)
            self.assertEqual(len(results), 2)
            for tokens, done in results:
                self.assertTrue(done)
                self.assertGreater(tokens, 0)
            # The router drained what it had and exited 0 (pagoda serve then restarts it).
            deadline = time.time() + 60
            exited = f"router (pid {router_pid}) exited with status 0"
            while True:
                with open(os.path.join(cluster.dir, "serve.log"), errors="replace") as f:
                    if exited in f.read():
                        break
                self.assertLess(time.time(), deadline, cluster.log_tails())
                time.sleep(0.1)
            router_log = cluster.log_tails(lines=400)
            self.assertRegex(router_log, r"draining [1-9][0-9]* live request")
            self.assertIn("shutting down with 0 live request(s)", router_log)


class QueueFullTest(unittest.TestCase):
    """429 when the only replica's queue is full (one running, one waiting)."""

    def test_429_queue_full(self):
        with PagodaCluster(replicas=1, tp=1,
                           extra_args=["--max-queued-requests", "1",
                                       "--router-flag=--max-num-seqs=1"]) as cluster:
            statuses, bodies = [], []
            lock = threading.Lock()

            def run():
                status, _, body = http("POST", cluster.http_url + "/v1/completions",
                                       {"prompt": "Once upon a time", "max_tokens": 300,
                                        "ignore_eos": True})
                with lock:
                    statuses.append(status)
                    bodies.append(body)

            threads = [threading.Thread(target=run) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertIn(429, statuses)
            self.assertIn(200, statuses)
            self.assertEqual(set(statuses), {200, 429})
            error = json.loads(bodies[statuses.index(429)])["error"]
            self.assertEqual(error["code"], 429)
            self.assertEqual(error["type"], "RateLimitError")
            # The server keeps serving once the queue drains.
            status, _, _ = http("POST", cluster.http_url + "/v1/completions",
                                {"prompt": "Hi", "max_tokens": 2})
            self.assertEqual(status, 200)


class NoReadyReplicaTest(unittest.TestCase):
    """503 from /health, /ready and the API (after --admission-wait-s) while no replica is ready
    (its worker is absent)."""

    def test_503_no_ready_replica(self):
        work = pagoda_cluster.tempfile.mkdtemp(prefix="pagoda_py_router_")
        port_file = os.path.join(work, "http.port")
        router = subprocess.Popen(
            [os.path.join(pagoda_cluster.BIN_DIR, "pagoda-router"), "--model",
             pagoda_cluster.model_dir(), "--host", "127.0.0.1", "--grpc-port", "0",
             "--http-port", "0", "--http-port-file", port_file, "--replica",
             f"127.0.0.1:{pagoda_cluster.free_port()}", "--admission-wait-s", "0.5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 30
            while not os.path.exists(port_file):
                self.assertIsNone(router.poll(), "pagoda-router exited")
                self.assertLess(time.time(), deadline, "no HTTP port file")
                time.sleep(0.05)
            with open(port_file) as f:
                url = f"http://127.0.0.1:{int(f.read())}"
            self.assertEqual(http("GET", url + "/health")[0], 503)
            status, _, body = http("GET", url + "/ready")
            self.assertEqual(status, 503)
            self.assertFalse(json.loads(body)["ready"])
            status, _, body = http("POST", url + "/v1/completions",
                                   {"prompt": "Hi", "max_tokens": 2})
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body)["error"]["code"], 503)
            self.assertIn("--admission-wait-s", json.loads(body)["error"]["message"])
            # Still answering.
            self.assertEqual(http("GET", url + "/v1/models")[0], 200)
        finally:
            router.terminate()
            router.wait(timeout=30)
            pagoda_cluster.shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    pagoda_cluster.main()
