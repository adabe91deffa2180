#!/usr/bin/env python3
"""Replays greedy outputs through the n-gram proposer and the adaptive speculation policy, with a
cost model, to see what a policy or a cheaper verification would give without running the model.

Input: a `pagoda generate --output FILE` JSONL of greedy outputs (prompt_token_ids, token_ids);
the output text is the same with speculation on and off, so each token's predictability is fixed.
The proposer is NgramProposer's rule (engine/ngram_proposer.cc: the longest suffix of
prompt_lookup_min..max tokens that occurred before, its latest occurrence among equals) and the
policy BatchingPolicy's at batch 1 (engine/batching_policy.cc: k = accepted + 1 after a partial
acceptance, doubled after a whole one, capped at K; 1, 2, 4 steps without proposals after a
rejected single draft; otherwise a lookup at every step — a pipelined sequence's guarded lookup
proposes what a lookup after its pending token would, so each lookup is modelled as made with the
tokens known). A decode step costs D ms and a verification of n drafts D + PER * n ms
(BM_VerifyStep); planning waits cost nothing at batch 1 (docs/performance.md, speculation runs
11 and 12). Prints the modelled on/off throughput ratio, verifications, drafts and
accepted drafts for the defaults, policy variants and per-draft costs.

  pagoda generate --model M --prompts-file P --temperature 0 --output out.jsonl
  benchmarks/speculative_policy_sim.py out.jsonl [--decode-ms 4.1] [--draft-ms 0.7]
"""
import argparse
import json


def propose(tokens, max_tokens, min_n, max_n):
    size = len(tokens)
    if max_tokens <= 0 or size < 2:
        return []
    best_end, best_len = -1, 0
    for p in range(size - 2, -1, -1):
        if tokens[p] != tokens[-1]:
            continue
        n = 1
        while n < max_n and p - n >= 0 and tokens[p - n] == tokens[size - 1 - n]:
            n += 1
        if n >= min_n and n > best_len:
            best_end, best_len = p, n
            if n == max_n:
                break
    if best_end < 0:
        return []
    return tokens[best_end + 1:best_end + 1 + max_tokens]


def simulate(outputs, decode_ms, draft_ms, k_max=12, min_n=2, max_n=4, max_backoff=4,
             empty_backoff=False):
    on = off = 0.0
    verifications = drafts = accepted = 0
    for prompt, output in outputs:
        off += len(output) * decode_ms
        i, k, pipelined, backoff = 0, k_max, 0, 1
        while i < len(output):
            if pipelined > 0:
                pipelined -= 1
                i += 1
                on += decode_ms
                continue
            proposal = propose(prompt + output[:i], min(k, len(output) - i - 1), min_n, max_n)
            if not proposal:
                if empty_backoff:
                    pipelined, backoff = backoff, min(2 * backoff, max_backoff)
                i += 1
                on += decode_ms
                continue
            n = len(proposal)
            a = 0
            while a < n and proposal[a] == output[i + a]:
                a += 1
            verifications += 1
            drafts += n
            accepted += a
            on += decode_ms + draft_ms * n
            i += a + 1
            k = min(k_max, 2 * max(k, 1)) if a == n else min(k_max, a + 1)
            if a > 0:
                backoff = 1
            elif n == 1:
                pipelined, backoff = backoff, min(2 * backoff, max_backoff)
    return off / on, verifications, drafts, accepted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs")
    parser.add_argument("--decode-ms", type=float, default=4.1)
    parser.add_argument("--draft-ms", type=float, default=0.7)
    args = parser.parse_args()
    outputs = []
    with open(args.outputs) as f:
        for line in f:
            record = json.loads(line)
            outputs.append((record["prompt_token_ids"], record["token_ids"]))
    tokens = sum(len(o) for _, o in outputs)
    predictable = sum(
        propose(p + o[:i], 1, 2, 4) == [o[i]] for p, o in outputs for i in range(len(o)))
    print(f"{len(outputs)} outputs, {tokens} tokens, {predictable} predictable by a lookup "
          f"({100.0 * predictable / tokens:.1f} %)")
    print("variant                        ratio  verifications  drafts  accepted")

    def row(name, **kw):
        kw.setdefault("draft_ms", args.draft_ms)
        ratio, v, d, a = simulate(outputs, args.decode_ms, **kw)
        print(f"{name:<30} {ratio:5.2f}  {v:13d}  {d:6d}  {a:8d}")

    row("default (k 12, n 2..4)")
    for k in (6, 8, 16, 24):
        row(f"k {k}", k_max=k)
    row("n 1..4", min_n=1)
    row("n 3..4", min_n=3)
    row("n 2..8", max_n=8)
    row("back-off up to 8", max_backoff=8)
    row("back-off on empty lookups", empty_backoff=True)
    for ms in (0.9, 0.5, 0.3, 0.0):
        row(f"{ms} ms a draft", draft_ms=ms)


if __name__ == "__main__":
    main()
