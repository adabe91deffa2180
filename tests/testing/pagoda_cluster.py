"""Test support for the Python tests (tests/integration, tests/deploy): the paths CMake passes
them, stories260K converted for Pagoda, and a real `pagoda serve` cluster (router + R x T workers
on loopback, OS-chosen ports) with its state file, HTTP helpers and log tails.

    with PagodaCluster(replicas=2, tp=2, extra_args=["--api-key", "k"]) as cluster:
        requests.post(cluster.http_url + "/v1/completions", ...)

The paths come from the command line that CMake gives the tests (see configure()).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BIN_DIR = None
SOURCE_DIR = None
SHARED_DIR = None
_MODEL_DIR = None


def configure(argv):
    """Reads --bin-dir, --source-dir and --shared-dir; returns the remaining (unittest) argv."""
    global BIN_DIR, SOURCE_DIR, SHARED_DIR
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--shared-dir", required=True)
    known, rest = parser.parse_known_args(argv[1:])
    BIN_DIR, SOURCE_DIR, SHARED_DIR = known.bin_dir, known.source_dir, known.shared_dir
    return [argv[0]] + rest


def main():
    """A test script's entry point: configure() from sys.argv, run its unittest cases, remove
    the converted model."""
    argv = configure(sys.argv)
    try:
        unittest.main(module="__main__", argv=argv, verbosity=2)
    finally:
        cleanup_model_dir()


# SmolLM2-135M-Instruct as the Q4_1 GGUF that scripts/install-deps.sh fetches into models/, and
# the model name Pagoda serves it under.
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1"


def smollm2_path():
    return os.path.join(SOURCE_DIR, "models", SMOLLM2_FILE)


def require_smollm2():
    """smollm2_path(), or unittest.SkipTest where the file is absent."""
    path = smollm2_path()
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} is absent (scripts/install-deps.sh)")
    return path


def stories_source_dir():
    return os.path.join(SHARED_DIR, "models", "stories260K")


def convert_stories(out):
    """Converts stories260K from llama2.c to a Hugging Face directory `out` (pagoda convert)."""
    src = stories_source_dir()
    subprocess.run([os.path.join(BIN_DIR, "pagoda"), "convert", "llama2c",
                    "--checkpoint", os.path.join(src, "stories260K.bin"),
                    "--tokenizer", os.path.join(src, "tok512.bin"), "--out", out],
                   check=True, stdout=subprocess.DEVNULL)


def model_dir():
    """stories260K converted once per process, in a directory named stories260K (the served
    model's name is its directory's)."""
    global _MODEL_DIR
    if _MODEL_DIR is None:
        out = os.path.join(tempfile.mkdtemp(prefix="pagoda_py_model_"), "stories260K")
        convert_stories(out)
        _MODEL_DIR = out
    return _MODEL_DIR


def cleanup_model_dir():
    if _MODEL_DIR is not None:
        shutil.rmtree(os.path.dirname(_MODEL_DIR), ignore_errors=True)


def load_goldens():
    with open(os.path.join(stories_source_dir(), "golden_greedy.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=60, context=None):
    """One HTTP request: (status, headers, body bytes); HTTP errors are results, not raised.
    `context`: an ssl.SSLContext for https URLs."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in request.headers:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): value}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in series:
            name, rest = series.split("{", 1)
            for pair in rest.rstrip("}").split(","):
                if pair:
                    key, val = pair.split("=", 1)
                    labels[key] = val.strip('"')
        else:
            name = series
        samples[(name, frozenset(labels.items()))] = float(value)
    return samples


def metric_sum(samples, name, **labels):
    return sum(value for (n, ls), value in samples.items()
               if n == name and all((k, v) in ls for k, v in labels.items()))


def wait_for_router_state(process, state_file, timeout, what, log_tails):
    """The state file (`pagoda serve --state-file`) of a starting cluster, once its router has an
    HTTP port; RuntimeError with log_tails() if `process` (`what`) exits first or timeout passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n" + log_tails())
        try:
            with open(state_file) as f:
                state = json.load(f)
            if state["router"].get("http_port", 0) > 0:
                return state
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start:\n" + log_tails())


class PagodaCluster:
    """`pagoda serve` as a context manager; waits until every replica is ready."""

    def __init__(self, replicas=2, tp=2, extra_args=(), env=None, ready_timeout=90,
                 ssl_context=None, model=None):
        """ssl_context: the router serves HTTPS (--tls-* router flags); how to reach it.
        model: what to serve (a directory or a .gguf file); None: stories260K."""
        self.replicas = replicas
        self.ssl_context = ssl_context
        self.dir = tempfile.mkdtemp(prefix="pagoda_py_serve_")
        self.state_file = os.path.join(self.dir, "state.json")
        argv = [os.path.join(BIN_DIR, "pagoda"), "serve", "--model", model or model_dir(),
                "--replicas", str(replicas), "--tp", str(tp), "--grpc-port", "0",
                "--http-port", "0", "--state-file", self.state_file,
                "--log-dir", os.path.join(self.dir, "logs"), "--num-gpu-blocks-override", "512",
                *extra_args]
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        try:
            self.state = self._wait_for_state(ready_timeout)
            self.http_port = self.state["router"]["http_port"]
            scheme = "https" if ssl_context is not None else "http"
            self.http_url = f"{scheme}://127.0.0.1:{self.http_port}"
            self.wait_ready(replicas, ready_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_for_state(self, timeout):
        return wait_for_router_state(self.process, self.state_file, timeout, "pagoda serve",
                                     self.log_tails)

    def ready_replicas(self):
        status, _, body = http("GET", self.http_url + "/ready", timeout=10,
                               context=self.ssl_context)
        if status not in (200, 503):
            return 0
        return sum(r["state"] == "ready" for r in json.loads(body)["replicas"])

    def wait_ready(self, count, timeout=90):
        deadline = time.time() + timeout
        while self.ready_replicas() < count:
            if time.time() > deadline:
                raise RuntimeError(f"fewer than {count} replicas ready:\n" + self.log_tails())
            time.sleep(0.1)

    def metrics(self):
        status, _, body = http("GET", self.http_url + "/metrics", timeout=10)
        assert status == 200, status
        return parse_metrics(body.decode())

    def worker_metrics_ports(self):
        return [w["metrics_port"] for w in self.state["workers"]]

    def log_tails(self, lines=30):
        out = []
        for root, _, files in os.walk(self.dir):
            for name in sorted(files):
                if name.endswith(".log"):
                    with open(os.path.join(root, name), errors="replace") as f:
                        tail = f.read().splitlines()[-lines:]
                    out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write(self.log_tails())
        self.close()
