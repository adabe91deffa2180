#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (corpus/<fuzzer>/seed_*): small valid inputs of each
format for libFuzzer to mutate, and for the replay tests to run. Deterministic; rerun it after
changing a seed and commit the result. Inputs that once crashed a harness are committed beside
the seeds as crash_<what>; this script never deletes them.

Usage: make_corpus.py  (with the tests' venv: needs numpy and the gguf package; protoc on PATH)
"""

import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "tests", "data")


def write(fuzzer, name, data):
    folder = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, "seed_" + name), "wb") as f:
        f.write(data)


def gguf_seeds():
    import gguf

    def llama(path, tokenizer_model):
        w = gguf.GGUFWriter(path, "llama")
        w.add_context_length(64)
        w.add_embedding_length(32)
        w.add_block_count(1)
        w.add_feed_forward_length(64)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        tokens = ["<unk>", "<s>", "</s>"] + [chr(c) for c in range(ord("a"), ord("a") + 13)]
        w.add_tokenizer_model(tokenizer_model)
        if tokenizer_model == "gpt2":
            w.add_tokenizer_pre("smollm")
            tokens += ["ab", "abc"]
            w.add_token_merges(["a b", "ab c"])
        w.add_token_list(tokens)
        w.add_token_scores([0.0] * len(tokens))
        w.add_token_types([2, 3, 3] + [1] * (len(tokens) - 3))
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
        rng = np.random.default_rng(0)
        w.add_tensor("token_embd.weight",
                     rng.standard_normal((len(tokens), 32)).astype(np.float32))
        w.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    tmp = os.path.join(HERE, "corpus", ".tmp.gguf")
    for model in ("gpt2", "llama"):
        llama(tmp, model)
        with open(tmp, "rb") as f:
            write("gguf_fuzzer", model + "_tokenizer.gguf", f.read())
    os.remove(tmp)


def safetensors_file(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors_seeds():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    write("safetensors_fuzzer", "f32.safetensors", safetensors_file(
        {"w": ("F32", [2, 3], a.tobytes())}, {"format": "pt"}))
    write("safetensors_fuzzer", "f16_bf16.safetensors", safetensors_file({
        "h": ("F16", [4], np.array([1, -2, 0.5, 65504], dtype=np.float16).tobytes()),
        "b": ("BF16", [2, 1], struct.pack("<HH", 0x3F80, 0xC000)),
        "scalar": ("F32", [], struct.pack("<f", 3.0))}))


def model_config_seeds():
    base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 512, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float32",
            "bos_token_id": 1, "eos_token_id": 2}
    write("model_config_fuzzer", "llama.json", json.dumps(base))
    llama3 = dict(base, eos_token_id=[2, 3], rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128})
    write("model_config_fuzzer", "llama3.json", json.dumps(llama3))
    qwen3 = dict(base, architectures=["Qwen3ForCausalLM"], head_dim=32, attention_bias=False,
                 use_sliding_window=False, torch_dtype="bfloat16")
    write("model_config_fuzzer", "qwen3.json", json.dumps(qwen3))
    qwen2 = dict(base, architectures=["Qwen2ForCausalLM"], tie_word_embeddings=False,
                 use_sliding_window=False, sliding_window=4096, max_window_layers=2)
    write("model_config_fuzzer", "qwen2.json", json.dumps(qwen2))


def tokenizer_json_seeds():
    for name in ("gpt2_tokenizer", "bytelevel_tokenizer", "llama2_tokenizer",
                 "metaspace_tokenizer"):
        folder = os.path.join(DATA, name)
        with open(os.path.join(folder, "tokenizer.json"), "rb") as f:
            data = f.read()
        config = os.path.join(folder, "tokenizer_config.json")
        if os.path.exists(config):
            with open(config, "rb") as f:
                data += b"\0" + f.read()
        write("tokenizer_json_fuzzer", name, data)


def text_seeds():
    texts = {
        "plain": "Once upon a time, there was a little girl.",
        "unicode": "caf\u00e9 \u4e2d\u6587 \U0001F600 \u0645\u0631\u062d\u0628\u0627 \u00a0\t\n",
        "specials": "<s>hi</s><|im_start|>user\nhello<|im_end|> <unk>",
        "code": "def f(x):\n    return x ** 2  # 1234567890\n",
        "spaces": "   leading  and   trailing   ",
    }
    for name, text in texts.items():
        write("tokenize_text_fuzzer", name, text)
    write("tokenize_text_fuzzer", "invalid_utf8", b"ab\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x98")


def llama2c_seeds():
    dim, hidden, layers, heads, kv_heads, vocab, seq = 8, 16, 1, 2, 1, 4, 8
    head = dim // heads
    kv_dim = kv_heads * head
    floats = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv_dim * dim
              + layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim + seq * head)
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq)
    write("llama2c_fuzzer", "checkpoint.bin",
          header + np.linspace(-1, 1, floats, dtype=np.float32).tobytes())
    with open(os.path.join(REPO, "..", "shared", "models", "stories260K", "tok512.bin"),
              "rb") as f:
        write("llama2c_fuzzer", "tok512.bin", f.read())


def chat_template_seeds():
    folder = os.path.join(DATA, "chat_templates")
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            write("chat_template_fuzzer", name, f.read())
    write("chat_template_fuzzer", "macro.jinja",
          "{% macro r(n) %}{% if n > 0 %}{{ r(n - 1) }}{% endif %}{{ n }}{% endmacro %}"
          "{{ r(3) }}{% set ns = namespace(x=0) %}{% for m in messages %}"
          "{% set ns.x = ns.x + 1 %}{{ m.role | upper }}{{ m.content | tojson }}"
          "{% endfor %}{{ ns.x }}{{ tools | length }}{{ [1,2,3][1:] }}{{ 'a,b'.split(',') }}")


def openai_request_seeds():
    bodies = {
        "completion.json": {"model": "m", "prompt": "Hello", "max_tokens": 8, "temperature": 0,
                            "stop": ["\n"], "logprobs": 2, "echo": False, "seed": 7},
        "completion_ids.json": {"prompt": [[1, 2, 3], [4, 5]], "n": 2, "max_tokens": 4,
                                "stream": True, "stream_options": {"include_usage": True}},
        "chat.json": {"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 16, "top_p": 0.9, "top_k": 5, "logprobs": True, "top_logprobs": 2,
            "presence_penalty": 0.5, "frequency_penalty": 0.1, "repetition_penalty": 1.1},
        "chat_stream.json": {"messages": [{"role": "user", "content": "x"}], "stream": True,
                             "n": 2, "min_tokens": 1, "ignore_eos": True, "stop_token_ids": [2],
                             "skip_special_tokens": False, "use_beam_search": False},
    }
    for name, body in bodies.items():
        write("openai_request_fuzzer", name, json.dumps(body))


def protoc_encode(message, text):
    proto_dir = os.path.join(REPO, "proto")
    return subprocess.run(
        ["protoc", "-I", proto_dir, "--encode=" + message, "pagoda/v1/generation.proto",
         "pagoda/internal/worker.proto"],
        input=text.encode(), capture_output=True, check=True, cwd=proto_dir).stdout


def proto_seeds():
    write("grpc_request_fuzzer", "text", protoc_encode("pagoda.v1.GenerateRequest", """
        request_id: "r1" model: "m" text: "Hello world" add_special_tokens: false priority: 1
        sampling { temperature: 0.7 top_k: 40 top_p: 0.9 min_p: 0.05 repetition_penalty: 1.1
                   presence_penalty: 0.2 frequency_penalty: 0.1 seed: 42 logprobs: 2
                   max_tokens: 16 min_tokens: 1 stop: "\\n" stop_token_ids: 2 n: 2 }"""))
    write("grpc_request_fuzzer", "token_ids", protoc_encode("pagoda.v1.GenerateRequest", """
        token_ids { ids: [1, 2, 3] }
        sampling { max_tokens: 4 beam_width: 2 length_penalty: 1.5 ignore_eos: true }"""))
    sampling = """sampling_params { temperature: 1 top_k: 0 top_p: 1 min_p: 0
        repetition_penalty: 1 presence_penalty: 0 frequency_penalty: 0 seed: 1 logprobs: 1
        max_tokens: 8 min_tokens: 0 skip_special_tokens: true n: 1 beam_width: 0
        length_penalty: 1 }"""
    write("step_codec_fuzzer", "plan", b"\0" + protoc_encode("pagoda.internal.StepPlan", f"""
        step_id: 3 num_steps: 1
        new_sequences {{ seq_id: "a-0" token_ids: [1, 2, 3] num_prompt_tokens: 3
                         num_computed_tokens: 0 num_scheduled_tokens: 3 block_ids: [0] seed: 9
                         {sampling} }}
        cached_sequences {{ seq_id: "b-0" replaced_block_ids: [0, 4] new_block_ids: [5]
                            num_scheduled_tokens: 1 replace_last_token_ids: [7] }}
        finished_seq_ids: "c-0" swap_out: [1, 0] swap_in: [0, 2] block_copies: [3, 6]"""))
    write("step_codec_fuzzer", "result", b"\1" + protoc_encode("pagoda.internal.StepResult", """
        step_id: 3
        outputs { seq_id: "a-0" token_ids: [4] logprobs: [-0.5]
                  top_logprobs { token_ids: [4, 5] logprobs: [-0.5, -1.5] } }"""))


def main():
    gguf_seeds()
    safetensors_seeds()
    model_config_seeds()
    tokenizer_json_seeds()
    text_seeds()
    llama2c_seeds()
    chat_template_seeds()
    openai_request_seeds()
    proto_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
