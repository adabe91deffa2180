"""The quick start, end to end: scripts/quickstart.sh (its --help, and its serving path with
--no-setup: the SmolLM2-135M-Instruct GGUF that install-deps.sh fetches, 1 replica x TP 1 as the
script chooses, on OS-chosen ports) answers the official `openai` client's chat completion, plain
and streamed, with SmolLM2's greedy answer from ../shared/models/smollm2/golden_greedy.jsonl;
GET /v1/models reports the GGUF's context length; Ctrl-C (SIGINT to the foreground process
group) stops the router and the workers and the script exits 0.

Run by ctest: .venv/bin/python quickstart_test.py --bin-dir B --source-dir S --shared-dir D
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import gguf
import openai

import pagoda_cluster
from pagoda_cluster import http, wait_for_router_state

MODEL = pagoda_cluster.SMOLLM2_NAME
EOS = 2  # <|im_end|>


def script():
    return os.path.join(pagoda_cluster.SOURCE_DIR, "scripts", "quickstart.sh")


def script_env():
    # The script serves from $BUILD_DIR/bin: the build under test. Its workers take the exact CPU
    # path (fp32 activations against the dequantized weights): the answers are compared text for
    # text with the float64 golden, which the default path's 8-bit activations need not reproduce
    # (its greedy tokens may flip where the golden's top-two margin is below 1.5, and this
    # answer's third token has 0.064; tests/testing/smollm2_near_tie.h). The default path's
    # goldens are checked by gguf_model_test, generate_command_test and cluster_test.
    return {**os.environ, "BUILD_DIR": os.path.dirname(os.path.abspath(pagoda_cluster.BIN_DIR)),
            "PAGODA_CPU_INT8_DOT": "0"}


def byte_decoder():
    """GPT-2's byte-level BPE alphabet, character -> byte (the inverse of bytes_to_unicode)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def golden_answer():
    """The golden's chat prompt (ChatML with the template's default system prompt, "What is
    2 + 2?") and its greedy answer up to <|im_end|>, decoded with the GGUF's own vocabulary by
    the `gguf` package (not by Pagoda)."""
    with open(os.path.join(pagoda_cluster.SHARED_DIR, "models", "smollm2",
                           "golden_greedy.jsonl")) as f:
        golden = json.loads(f.readline())
    assert golden["prompt"].endswith(
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"), golden["prompt"]
    ids = golden["greedy_ids"]
    ids = ids[:ids.index(EOS)]
    reader = gguf.GGUFReader(pagoda_cluster.smollm2_path())
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    decoder = byte_decoder()
    text = bytes(decoder[c] for i in ids for c in tokens[i]).decode("utf-8")
    return golden, ids, text


class QuickstartScriptTest(unittest.TestCase):
    def test_script_parses_and_documents_its_topology_and_ports(self):
        subprocess.run(["bash", "-n", script()], check=True)
        out = subprocess.run([script(), "--help"], check=True, capture_output=True, text=True)
        for needle in ("--no-setup", "50051", "8000", "PAGODA_TP=3", "OMP_NUM_THREADS",
                       pagoda_cluster.SMOLLM2_FILE):
            self.assertIn(needle, out.stdout)

    def test_no_setup_names_a_missing_build(self):
        missing = tempfile.mkdtemp(prefix="pagoda_no_build_")
        try:
            out = subprocess.run([script(), "--no-setup"], capture_output=True, text=True,
                                 env={**os.environ, "BUILD_DIR": missing})
        finally:
            shutil.rmtree(missing)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn(f"{missing}/bin/pagoda is missing", out.stderr)


class QuickstartServesSmolLM2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pagoda_cluster.require_smollm2()
        cls.golden, cls.answer_ids, cls.answer = golden_answer()
        cls.dir = tempfile.mkdtemp(prefix="pagoda_quickstart_")
        cls.state_file = os.path.join(cls.dir, "state.json")
        cls.log = open(os.path.join(cls.dir, "quickstart.log"), "wb")
        # Its own process group, so that SIGINT to the group is what Ctrl-C in a terminal does.
        cls.process = subprocess.Popen(
            [script(), "--no-setup", "--", "--grpc-port", "0", "--http-port", "0",
             "--state-file", cls.state_file, "--log-dir", os.path.join(cls.dir, "logs")],
            stdout=cls.log, stderr=subprocess.STDOUT, env=script_env(), start_new_session=True)
        try:
            cls.state = cls.wait_for_state(90)
            cls.url = f"http://127.0.0.1:{cls.state['router']['http_port']}"
            cls.wait_ready(90)
        except BaseException:
            cls.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise
        cls.client = openai.OpenAI(base_url=cls.url + "/v1", api_key="none", max_retries=0,
                                   timeout=120)

    @classmethod
    def wait_for_state(cls, timeout):
        return wait_for_router_state(cls.process, cls.state_file, timeout, "quickstart.sh",
                                     cls.log_tails)

    @classmethod
    def wait_ready(cls, timeout):
        deadline = time.time() + timeout
        while True:
            status, _, body = http("GET", cls.url + "/ready", timeout=10)
            if status == 200 and json.loads(body)["ready"]:
                return
            if time.time() > deadline:
                raise RuntimeError("the replica is not ready:\n" + cls.log_tails())
            time.sleep(0.1)

    @classmethod
    def log_tails(cls, lines=30):
        out = []
        for root, _, files in os.walk(cls.dir):
            for name in sorted(files):
                if name.endswith(".log"):
                    with open(os.path.join(root, name), errors="replace") as f:
                        out.append(f"--- {name}\n" + "\n".join(f.read().splitlines()[-lines:]))
        return "\n".join(out)

    @classmethod
    def stop(cls):
        """Ctrl-C: SIGINT to the whole process group. Returns the exit status (None: hung)."""
        if cls.process.poll() is None:
            os.killpg(cls.process.pid, signal.SIGINT)
            try:
                cls.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(cls.process.pid, signal.SIGKILL)
                cls.process.wait()
                return None
        return cls.process.returncode

    @classmethod
    def tearDownClass(cls):
        pids = [cls.state["router"]["pid"]] + [w["pid"] for w in cls.state["workers"]]
        returncode = cls.stop()
        cls.log.close()
        tails = cls.log_tails()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if returncode != 0:
            raise AssertionError(f"Ctrl-C: quickstart.sh exited with {returncode}:\n{tails}")
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")
                 and open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
        if alive:
            raise AssertionError(f"Ctrl-C left processes {alive} running:\n{tails}")

    def run(self, result=None):
        # A failing test shows the cluster's logs (the folder is gone after the class).
        problems = (lambda: len(result.failures) + len(result.errors)) if result else (lambda: 0)
        before = problems()
        outcome = super().run(result)
        if problems() > before:
            sys.stderr.write(f"---- logs after {self.id()} ----\n{self.log_tails()}\n")
        return outcome

    def test_serves_one_replica_of_one_worker(self):
        self.assertEqual(len(self.state["workers"]), 1, self.state)

    def test_models_report_the_context_length(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(models.data[0].model_extra["max_model_len"], 8192)

    def test_chat_completion_is_the_greedy_answer(self):
        chat = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "What is 2 + 2?"}],
            temperature=0, max_tokens=32)
        self.assertEqual(chat.choices[0].message.content, self.answer)
        self.assertEqual(chat.choices[0].finish_reason, "stop")
        # The template rendered the golden's prompt exactly.
        self.assertEqual(chat.usage.prompt_tokens, len(self.golden["prompt_ids"]))

    def test_streamed_chat_completion_is_the_greedy_answer(self):
        stream = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "What is 2 + 2?"}],
            temperature=0, max_tokens=32, stream=True)
        text, finish = "", None
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        self.assertEqual(text, self.answer)
        self.assertEqual(finish, "stop")

    def test_chat_without_max_tokens_may_use_the_whole_context(self):
        # max_tokens defaults to the rest of the 8192-token context, which the KV cache the script
        # sizes must hold.
        status, _, body = http("POST", self.url + "/v1/chat/completions",
                               {"messages": [{"role": "user", "content": "What is 2 + 2?"}],
                                "temperature": 0})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], self.answer)

    def test_curl_completion_of_the_golden_prompt(self):
        out = subprocess.run(
            ["curl", "-sS", self.url + "/v1/completions", "-H", "Content-Type: application/json",
             "-d", json.dumps({"prompt": self.golden["prompt"], "temperature": 0,
                               "max_tokens": len(self.answer_ids)})],
            check=True, capture_output=True, text=True)
        self.assertEqual(json.loads(out.stdout)["choices"][0]["text"], self.answer, out.stdout)


if __name__ == "__main__":
    pagoda_cluster.main()
