#!/usr/bin/env python3
"""Hugging Face transformers baseline of issue 16's offline throughput (scripts/gpu-check.sh).

Builds a LlamaForCausalLM of the Llama-3-8B shape (benchmarks/llama3_8b_config.h: 32 layers,
hidden 4096, 32 heads, 8 KV heads, intermediate 14336, vocab 128256) with random bf16 weights
(transformers' own initialisation; the config is built here, nothing is downloaded) and runs
`generate` over the requests cuda_throughput_benchmark ran (its --requests_out file: prompt ids
and output lengths), as vLLM's benchmark_throughput runs its `hf` backend: the requests in their
order, in batches, each batch left-padded to its longest prompt and generating greedily for its
longest output (max_new_tokens = min_new_tokens, so no EOS ends a batch early). Batch sizes are
tried from the largest down (--batch-sizes); the first that runs without running out of memory is
the one measured (a failed size's time is not counted).

A batch size whose first batch's KV cache (and a rough prefill peak) would not fit the device's
free memory is skipped without trying it: HF's cache grows step by step, so running out of memory
can come minutes into a batch.

Counted like Pagoda's figure: requests and their own output lengths (tokens a request generates
past its length, because its batch runs longer, are waste, not output). The run stops before a
batch that would end past --max-seconds (judged by the batch before it), and the rates are over
the completed requests (HF runs all 1000 in tens of minutes; a device check has a few).

Prints after every batch, the rates so far (scripts/gpu-check.sh reads the last such line, so a
run killed by its time limit still leaves a figure):
  hf_baseline: requests=N batch_size=B elapsed_s=S requests_per_s=R output_tokens_per_s=T
      generated_tokens_per_s=G

  python3 benchmarks/hf_generate_baseline.py --requests requests.jsonl
  python3 benchmarks/hf_generate_baseline.py --requests requests.jsonl --tiny --device cpu  # check
"""

import argparse
import gc
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", required=True,
                   help="JSON lines {prompt_token_ids: [...], output_len: n}")
    p.add_argument("--batch-sizes", default="256,128,64,32,16,8,4,2,1",
                   help="batch sizes to try, largest first")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="stop after the batch during which this much time passed")
    p.add_argument("--max-requests", type=int, default=0, help="the first N requests (0: all)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true",
                   help="a 2-layer model of hidden 64 (the vocabulary kept): checks the script")
    args = p.parse_args(argv)
    try:
        args.batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")}, reverse=True)
    except ValueError:
        p.error("--batch-sizes takes comma-separated integers")
    if not args.batch_sizes or args.batch_sizes[-1] < 1:
        p.error("--batch-sizes takes positive integers")
    if args.max_seconds <= 0:
        p.error("--max-seconds must be > 0")
    return args


def load_requests(path, limit):
    requests = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            ids, out = r.get("prompt_token_ids"), r.get("output_len")
            if not isinstance(ids, list) or not ids or not isinstance(out, int) or out < 1:
                sys.exit(f"{path}:{number}: needs a non-empty prompt_token_ids and output_len >= 1")
            requests.append((ids, out))
    if not requests:
        sys.exit(f"{path}: no requests")
    return requests[:limit] if limit > 0 else requests


def build_model(torch, tiny, device):
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16) if tiny else dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128)
    config = LlamaConfig(vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0,
                         max_position_embeddings=8192, tie_word_embeddings=False,
                         bos_token_id=128000, eos_token_id=128001, **shape)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 on the device: no fp32 copy
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def generate(torch, model, batch, device):
    """Greedy generation of one batch; returns the tokens generated per sequence."""
    longest = max(len(ids) for ids, _ in batch)
    steps = max(out for _, out in batch)
    pad = 0
    input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for i, (ids, _) in enumerate(batch):  # left padding: every prompt ends at the right edge
        input_ids[i, longest - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[i, longest - len(ids):] = 1
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             do_sample=False, max_new_tokens=steps, min_new_tokens=steps,
                             pad_token_id=pad, eos_token_id=model.config.eos_token_id)
    generated = out.shape[1] - longest
    if generated != steps:
        raise RuntimeError(f"generate made {generated} tokens, not {steps}")
    return generated


def fits(torch, model, batch, device):
    """Whether the batch's KV cache at its last step, and a rough peak of its prefill (three MLP
    activations of every padded prompt token), fit the device's free memory; with the reason."""
    if not device.startswith("cuda"):
        return True, ""
    c = model.config
    longest = max(len(ids) for ids, _ in batch)
    steps = max(out for _, out in batch)
    kv = len(batch) * (longest + steps) * 2 * c.num_hidden_layers * c.num_key_value_heads * \
        c.head_dim * 2
    prefill = len(batch) * longest * 3 * c.intermediate_size * 2
    free = torch.cuda.mem_get_info()[0]
    need = 1.1 * (kv + prefill)
    return need <= free, f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"


def report(done, batch_size, seconds, outputs, generated):
    print(f"hf_baseline: requests={done} batch_size={batch_size} elapsed_s={seconds:.3f} "
          f"requests_per_s={done / seconds:.3f} output_tokens_per_s={outputs / seconds:.1f} "
          f"generated_tokens_per_s={generated / seconds:.1f}", flush=True)


def run(torch, model, requests, batch_size, args):
    """Batches of batch_size until the requests or the time run out, reporting after each."""
    done = outputs = generated = 0
    start = time.perf_counter()
    for first in range(0, len(requests), batch_size):
        batch = requests[first:first + batch_size]
        batch_start = time.perf_counter()
        generated += len(batch) * generate(torch, model, batch, args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        done += len(batch)
        outputs += sum(out for _, out in batch)
        now = time.perf_counter()
        report(done, batch_size, now - start, outputs, generated)
        if now - start + (now - batch_start) > args.max_seconds:
            break


def main(argv):
    args = parse_args(argv)
    import torch

    requests = load_requests(args.requests, args.max_requests)
    model = build_model(torch, args.tiny, args.device)
    generate(torch, model, [(requests[0][0][:8], 2)], args.device)  # warm-up: kernels, handles
    for batch_size in args.batch_sizes:
        ok, why = fits(torch, model, requests[:batch_size], args.device)
        if not ok:
            print(f"hf_baseline: batch size {batch_size} skipped: its first batch {why}", flush=True)
            continue
        try:
            run(torch, model, requests, batch_size, args)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            # cuBLAS reports its own failed allocations as a RuntimeError.
            if not isinstance(error, torch.OutOfMemoryError) and \
                    "ALLOC_FAILED" not in str(error) and "out of memory" not in str(error):
                raise
            gc.collect()
            torch.cuda.empty_cache()
            print(f"hf_baseline: batch size {batch_size} ran out of memory; trying a smaller one",
                  flush=True)
            continue
        return 0
    print("hf_baseline: no batch size fits in memory", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
