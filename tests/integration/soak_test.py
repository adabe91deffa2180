"""Soak under faults: a `pagoda serve` cluster (2 replicas x TP 2, stories260K) under mixed traffic
while a worker is killed (SIGKILL) every --kill-interval seconds and `pagoda serve` restarts it.

Traffic, from several client threads at once, each request one of: greedy completions (plain and
streamed) checked against the golden outputs; sampled chat with n = 2 and a stop string; a
structured output (guided_choice); gRPC Generate (streamed, greedy, checked against the goldens)
and Complete with beam search; a client that cancels a stream after its first tokens; and bad
requests (malformed JSON, out-of-range fields) that must get a 400 while everything else keeps
working. At the end, after the traffic stops:
- every request that was not meant to fail succeeded, and every greedy one equals its golden;
- each replica is ready again, with 0 running and waiting requests and 0% KV cache usage;
- the router's and each never-killed worker's resident memory grew by at most 10% between the
  first and the last fifth of the measured run, and their open file descriptors by at most 4.
  The first worker (rank 0 of replica 0) is never the one killed, so however long the run, one
  worker lives through all of it, its replica re-initialised after every kill of its peer.

    scripts/soak.sh 1800                   # 30 minutes (the docs' figure)
    ctest -R soak_test                     # 60 s, as CI runs it

Environment: PAGODA_SOAK_SECONDS (60), PAGODA_SOAK_KILL_INTERVAL_S (30), PAGODA_SOAK_CLIENTS (6),
PAGODA_SOAK_WARMUP_S (20: traffic before the measured run, so first-request allocations are not
counted as growth), PAGODA_SOAK_KINDS (a comma-separated subset of the request kinds, by their
method names). Prints a summary (requests per kind, failures, kills, memory and fds).
"""

import collections
import importlib
import json
import os
import random
import signal
import sys
import threading
import time
import unittest

import grpc
import openai

import pagoda_cluster
from pagoda_cluster import PagodaCluster, http

MODEL = "stories260K"
SOAK_SECONDS = float(os.environ.get("PAGODA_SOAK_SECONDS", "60"))
KILL_INTERVAL_S = float(os.environ.get("PAGODA_SOAK_KILL_INTERVAL_S", "30"))
CLIENTS = int(os.environ.get("PAGODA_SOAK_CLIENTS", "6"))
WARMUP_S = float(os.environ.get("PAGODA_SOAK_WARMUP_S", "20"))
KINDS = [k for k in os.environ.get("PAGODA_SOAK_KINDS", "").split(",") if k]
MAX_RSS_GROWTH = 0.10
MAX_FD_GROWTH = 4


def load_grpc_stubs():
    """pagoda.v1 stubs, generated at run time by examples/python/client.py's loader."""
    sys.path.insert(0, os.path.join(pagoda_cluster.SOURCE_DIR, "examples", "python"))
    try:
        client = importlib.import_module("client")
    finally:
        sys.path.pop(0)
    return client.load_stubs(os.path.join(pagoda_cluster.SOURCE_DIR, "proto"))


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Traffic:
    """The client side: request kinds, each a function that raises AssertionError on a wrong
    result; counts per kind and the failures with their messages."""

    def __init__(self, cluster, goldens, pb2, pb2_grpc):
        self.cluster = cluster
        self.goldens = [g for g in goldens if g["greedy_ids"]]
        self.pb2 = pb2
        self.client = openai.OpenAI(base_url=cluster.http_url + "/v1", api_key="unused",
                                    max_retries=0, timeout=120)
        channel = grpc.insecure_channel(f"127.0.0.1:{cluster.state['router']['port']}")
        self.stub = pb2_grpc.GenerationStub(channel)
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.failures = []
        self.kinds = [
            (self.greedy_completion, 3), (self.greedy_stream, 3), (self.sampled_chat_n2, 2),
            (self.guided_choice, 1), (self.grpc_greedy_stream, 2), (self.grpc_beam_complete, 1),
            (self.cancelled_stream, 1), (self.bad_request, 1),
        ]
        if KINDS:  # a subset, to find which kind of request a growth comes with
            self.kinds = [(f, w) for f, w in self.kinds if f.__name__ in KINDS]

    def golden(self, rng):
        return rng.choice(self.goldens)

    @staticmethod
    def prompt_of(golden):
        # An empty text prompt is refused, so the unconditional golden goes as token ids [BOS].
        return golden["prompt"] if golden["prompt"] else golden["prompt_ids"]

    def greedy_completion(self, rng):
        g = self.golden(rng)
        c = self.client.completions.create(model=MODEL, prompt=self.prompt_of(g),
                                           max_tokens=len(g["greedy_ids"]), temperature=0)
        assert c.choices[0].text == g["greedy_text"], (g["prompt"], c.choices[0].text)

    def greedy_stream(self, rng):
        g = self.golden(rng)
        stream = self.client.completions.create(model=MODEL, prompt=self.prompt_of(g),
                                                max_tokens=len(g["greedy_ids"]), temperature=0,
                                                stream=True)
        text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
        assert text == g["greedy_text"], (g["prompt"], text)

    def sampled_chat_n2(self, rng):
        c = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a story about a cat."}],
            n=2, temperature=0.8, max_tokens=24, stop=["."], seed=rng.randrange(1 << 30))
        assert len(c.choices) == 2, c
        for choice in c.choices:
            assert choice.finish_reason in ("stop", "length"), choice
            assert "." not in choice.message.content, choice.message.content

    def guided_choice(self, rng):
        options = ["the cat", "the dog", "a little bird"]
        c = self.client.completions.create(model=MODEL, prompt="Once upon a time there was",
                                           max_tokens=16, temperature=0.7,
                                           seed=rng.randrange(1 << 30),
                                           extra_body={"guided_choice": options})
        assert c.choices[0].text in options, c.choices[0].text

    def grpc_request(self, g, **sampling):
        request = self.pb2.GenerateRequest()
        if g["prompt"]:
            request.text = g["prompt"]
        else:
            request.token_ids.ids.extend(g["prompt_ids"])
        for key, value in sampling.items():
            setattr(request.sampling, key, value)
        return request

    def grpc_greedy_stream(self, rng):
        g = self.golden(rng)
        request = self.grpc_request(g, temperature=0, max_tokens=len(g["greedy_ids"]))
        ids = []
        for response in self.stub.Generate(request, timeout=120):
            for completion in response.outputs:
                ids.extend(completion.token_ids)
        assert ids == g["greedy_ids"], (g["prompt"], ids)

    def grpc_beam_complete(self, rng):
        g = self.golden(rng)
        request = self.grpc_request(g, temperature=0, max_tokens=8, beam_width=2, n=2)
        response = self.stub.Complete(request, timeout=120)
        assert len(response.completions) == 2, response

    def cancelled_stream(self, rng):
        stream = self.client.completions.create(model=MODEL, prompt="Once upon a time",
                                                max_tokens=200, temperature=0.9, stream=True,
                                                seed=rng.randrange(1 << 30))
        for i, _ in enumerate(stream):
            if i >= 2:
                break
        stream.close()

    def bad_request(self, rng):
        body = rng.choice([b'{"prompt": "Once", "max_tokens": ',
                           {"prompt": "Once", "max_tokens": -3},
                           {"prompt": "Once", "temperature": "hot"},
                           {"prompt": "Once", "guided_regex": "(unclosed"}])
        status, _, answer = http("POST", self.cluster.http_url + "/v1/completions", body,
                                 timeout=60)
        assert status == 400, (status, answer)
        assert "error" in json.loads(answer), answer

    def run_client(self, seed, stop_at):
        rng = random.Random(seed)
        functions, weights = zip(*self.kinds)
        while time.time() < stop_at:
            kind = rng.choices(functions, weights)[0]
            try:
                kind(rng)
                outcome = None
            except Exception as error:  # every failure is reported, whatever raised it
                outcome = f"{kind.__name__}: {type(error).__name__}: {error}"[:500]
            with self.lock:
                self.counts[kind.__name__] += 1
                if outcome is not None:
                    self.failures.append(outcome)


class SoakTest(unittest.TestCase):
    def test_soak_under_worker_kills(self):
        template = os.path.join(pagoda_cluster.SOURCE_DIR, "tests", "data", "chat_templates",
                                "smollm2.jinja")
        pb2, pb2_grpc = load_grpc_stubs()
        # 16 HTTP threads (not 512): cpp-httplib closes a keep-alive connection after 5 requests
        # and hands the next one to another pool thread, each of which touches its own stack and
        # malloc cache on first use; with 512 the RSS would keep rising for thousands of requests
        # before it levels off, which a short run cannot tell from a leak.
        args = ["--chat-template", template, "--router-flag=--http-threads=16"]
        with PagodaCluster(replicas=2, tp=2, extra_args=args) as cluster:
            traffic = Traffic(cluster, pagoda_cluster.load_goldens(), pb2, pb2_grpc)
            start = time.time()
            measure_from = start + WARMUP_S
            stop_at = measure_from + SOAK_SECONDS
            clients = [threading.Thread(target=traffic.run_client, args=(seed, stop_at))
                       for seed in range(CLIENTS)]
            for t in clients:
                t.start()

            # Faults and samples from this thread: a worker killed every KILL_INTERVAL_S of the
            # measured run; RSS and fds of the router and of every worker incarnation.
            rng = random.Random(1234)
            samples = collections.defaultdict(list)  # (name, pid) -> [(t, rss_kib, fds)]
            killed_pids, kills = set(), 0
            next_kill = measure_from + KILL_INTERVAL_S
            while time.time() < stop_at:
                time.sleep(0.5)
                now = time.time()
                state = self.read_state(cluster)
                if now >= measure_from:
                    for proc in [state["router"]] + state["workers"]:
                        rss, fds = proc_rss_kib(proc["pid"]), proc_fds(proc["pid"])
                        if rss is not None and fds is not None:
                            samples[(proc["name"], proc["pid"])].append((now, rss, fds))
                if now >= next_kill and now < stop_at - 2:
                    # Never the first worker: it is the one whose memory is checked (above).
                    victim = rng.choice(state["workers"][1:])
                    if victim["pid"] > 0:
                        os.kill(victim["pid"], signal.SIGKILL)
                        killed_pids.add(victim["pid"])
                        kills += 1
                    next_kill += KILL_INTERVAL_S
            for t in clients:
                t.join(timeout=300)
            self.assertFalse(any(t.is_alive() for t in clients), "a client is stuck")

            cluster.wait_ready(2, timeout=120)
            idle = self.wait_idle(cluster)
            final = self.read_state(cluster)
            end_fds = {p["pid"]: proc_fds(p["pid"]) for p in [final["router"]] + final["workers"]}

            summary = self.summarize(traffic, samples, killed_pids, end_fds, kills, idle)
            print(summary, file=sys.stderr)
            self.assertEqual(traffic.failures, [], summary)
            self.assertGreater(sum(traffic.counts.values()), 0)
            if SOAK_SECONDS >= KILL_INTERVAL_S + 2:
                self.assertGreater(kills, 0)
            self.assertTrue(idle["ok"], summary)
            self.check_growth(samples, killed_pids, end_fds, summary)

    @staticmethod
    def read_state(cluster):
        with open(cluster.state_file) as f:
            return json.load(f)

    @staticmethod
    def wait_idle(cluster, timeout=60):
        """Running, waiting and KV usage on every replica: 0 within `timeout` seconds."""
        deadline = time.time() + timeout
        while True:
            m = cluster.metrics()
            values = {name: [v for (n, _), v in m.items() if n == name]
                      for name in ("pagoda:num_requests_running", "pagoda:num_requests_waiting",
                                   "pagoda:kv_cache_usage_perc")}
            ok = all(len(vs) == 2 and all(v == 0 for v in vs) for vs in values.values())
            if ok or time.time() > deadline:
                return {"ok": ok, **values}
            time.sleep(0.5)

    @staticmethod
    def fifths(points):
        """Mean RSS of the first and of the last fifth of a process's samples."""
        k = max(1, len(points) // 5)
        first = sum(p[1] for p in points[:k]) / k
        last = sum(p[1] for p in points[-k:]) / k
        return first, last

    def long_lived(self, samples, killed_pids):
        """The processes sampled through the whole measured run (never killed)."""
        if not samples:
            return {}
        t0 = min(p[0][0] for p in samples.values())
        t1 = max(p[-1][0] for p in samples.values())
        return {key: points for key, points in samples.items()
                if key[1] not in killed_pids and points[0][0] - t0 < 2 and t1 - points[-1][0] < 2}

    def check_growth(self, samples, killed_pids, end_fds, summary):
        lived = self.long_lived(samples, killed_pids)
        self.assertTrue(any(name == "router" for name, _ in lived), summary)
        self.assertTrue(any(name != "router" for name, _ in lived), f"no worker lived through "
                        f"the run\n{summary}")
        for (name, pid), points in lived.items():
            first, last = self.fifths(points)
            self.assertLessEqual(last, first * (1 + MAX_RSS_GROWTH), f"{name} RSS\n{summary}")
            if end_fds.get(pid) is not None:
                self.assertLessEqual(end_fds[pid], points[0][2] + MAX_FD_GROWTH,
                                     f"{name} fds\n{summary}")

    def summarize(self, traffic, samples, killed_pids, end_fds, kills, idle):
        lines = [f"soak: {SOAK_SECONDS:.0f} s measured after {WARMUP_S:.0f} s warm-up, "
                 f"{CLIENTS} clients, a worker killed every {KILL_INTERVAL_S:.0f} s "
                 f"({kills} kills)",
                 "requests: " + ", ".join(f"{k} {v}" for k, v in sorted(traffic.counts.items()))
                 + f"; total {sum(traffic.counts.values())}, failed {len(traffic.failures)}"]
        lines += [f"  FAILED {f}" for f in traffic.failures[:20]]
        lines.append(f"idle at the end: {idle}")
        for (name, pid), points in sorted(self.long_lived(samples, killed_pids).items()):
            first, last = self.fifths(points)
            k = max(1, len(points) // 5)
            by_fifth = [sum(p[1] for p in points[i * k:(i + 1) * k]) / k / 1024
                        for i in range(min(5, len(points) // k))]
            lines.append(f"{name} (pid {pid}): RSS first fifth {first / 1024:.1f} MiB, last "
                         f"fifth {last / 1024:.1f} MiB ({(last / first - 1) * 100:+.1f}%; by "
                         f"fifth {' '.join(f'{v:.1f}' for v in by_fifth)}); fds "
                         f"{points[0][2]} -> {end_fds.get(pid)}")
        return "\n".join(lines)


if __name__ == "__main__":
    pagoda_cluster.main()
