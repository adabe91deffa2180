#!/usr/bin/env python3
"""Replays greedy outputs through the n-gram proposer and the adaptive speculation policy, with a
cost model, to see what a policy or a cheaper verification would give without running the model.

Input: a `pagoda generate --output FILE` JSONL of greedy outputs (prompt_token_ids, token_ids);
the output text is the same with speculation on and off, so each token's predictability is fixed.
The proposer is NgramProposer's rule (engine/ngram_proposer.cc: the longest suffix of
prompt_lookup_min..max tokens that occurred before, its latest occurrence among equals; with
agreement, the default, only as far as the latest 8 places of that suffix agree) and the
policy BatchingPolicy's at batch 1 (engine/batching_policy.cc: k = accepted + 1 after a partial
acceptance, doubled after a whole one, capped at K; 1, 2, 4 steps without proposals after a
rejected single draft; otherwise a lookup at every step — a pipelined sequence's guarded lookup
proposes what a lookup after its pending token would, so each lookup is modelled as made with the
tokens known; with agreement that is no longer so, since a guessed token is not voted on, and the
engine gains less than modelled: docs/performance.md, run 15). A step computing r rows (a
decode: 1; a verification of n drafts: n + 1) costs STEP_MS[r - 1] ms: by default `BM_VerifyStep/<n>/256` of SmolLM2-135M-Instruct Q4_1 on the
2-core AMD EPYC host (docs/performance.md, speculation run 14; past the table, the last row's
increment again). With --draft-ms instead, a decode costs D and a verification D + PER * n.
Planning waits cost nothing at batch 1 (docs/performance.md, speculation runs 11 and 12). Prints
the modelled on/off throughput ratio, verifications, drafts and accepted drafts for the
defaults, policy variants, and drafts made cheaper (each row's cost over a decode's scaled).

  pagoda generate --model M --prompts-file P --temperature 0 --output out.jsonl
  benchmarks/speculative_policy_sim.py out.jsonl [--step-ms 3.77,4.22,...] [--draft-ms 0.7]
"""
import argparse
import json


MAX_VOTERS = 8  # NgramProposer::kMaxVoters


def propose(tokens, max_tokens, min_n, max_n, agreement=True):
    size = len(tokens)
    if max_tokens <= 0 or size < 2:
        return []
    ends, best_len = [], 0  # the places of the longest suffix, latest first
    for p in range(size - 2, -1, -1):
        if tokens[p] != tokens[-1]:
            continue
        n = 1
        while n < max_n and p - n >= 0 and tokens[p - n] == tokens[size - 1 - n]:
            n += 1
        if n < min_n or n < best_len:
            continue
        if n > best_len:
            ends, best_len = [], n
        ends.append(p)
    if not ends:
        return []
    latest = ends[0]
    if not agreement:
        return tokens[latest + 1:latest + 1 + max_tokens]
    voters, drafts = ends[:MAX_VOTERS], []
    for token in tokens[latest + 1:latest + 1 + max_tokens]:
        j = len(drafts)
        if any(tokens[e + 1 + j] != token for e in voters):
            break
        drafts.append(token)
    return drafts


def simulate(outputs, step_ms, k_max=12, min_n=2, max_n=4, max_backoff=4, empty_backoff=False,
             agreement=True):
    """step_ms(rows): the cost of a step computing `rows` rows."""
    decode_ms = step_ms(1)
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
            proposal = propose(prompt + output[:i], min(k, len(output) - i - 1), min_n, max_n,
                               agreement)
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
            on += step_ms(n + 1)
            i += a + 1
            k = min(k_max, 2 * max(k, 1)) if a == n else min(k_max, a + 1)
            if a > 0:
                backoff = 1
            elif n == 1:
                pipelined, backoff = backoff, min(2 * backoff, max_backoff)
    return off / on, verifications, drafts, accepted


# BM_VerifyStep/<k>/256 (k drafts at position 256), k = 0 .. 12, SmolLM2-135M-Instruct Q4_1, the
# 2-core AMD EPYC host in its fast mode (docs/performance.md, speculation run 14).
DEFAULT_STEP_MS = "4.03,4.26,4.53,4.66,5.21,5.91,6.66,7.15,7.90,8.35,8.78,9.47,10.10"


def step_costs(args):
    """step_ms(rows) from --draft-ms (linear) or --step-ms (a table, extrapolated linearly)."""
    if args.draft_ms is not None:
        return lambda rows: args.decode_ms + args.draft_ms * (rows - 1)
    table = [float(x) for x in args.step_ms.split(",")]
    if len(table) < 2:
        raise SystemExit("--step-ms needs the costs of at least 1 and 2 rows")
    step = table[-1] - table[-2]
    return lambda rows: table[rows - 1] if rows <= len(table) else table[-1] + step * (
        rows - len(table))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs")
    parser.add_argument("--step-ms", default=DEFAULT_STEP_MS,
                        help="ms of a step computing 1, 2, 3, ... rows (comma-separated)")
    parser.add_argument("--decode-ms", type=float, default=4.1,
                        help="with --draft-ms: ms of a decode step")
    parser.add_argument("--draft-ms", type=float, default=None,
                        help="a linear model instead: ms each draft adds to a step")
    args = parser.parse_args()
    outputs = []
    with open(args.outputs) as f:
        for line in f:
            record = json.loads(line)
            outputs.append((record["prompt_token_ids"], record["token_ids"]))
    tokens = sum(len(o) for _, o in outputs)
    predictable = sum(
        propose(p + o[:i], 1, 2, 4, False) == [o[i]] for p, o in outputs for i in range(len(o)))
    print(f"{len(outputs)} outputs, {tokens} tokens, {predictable} predictable by a lookup "
          f"({100.0 * predictable / tokens:.1f} %)")
    print("variant                        ratio  verifications  drafts  accepted")
    step_ms = step_costs(args)

    def row(name, cost=step_ms, **kw):
        ratio, v, d, a = simulate(outputs, cost, **kw)
        print(f"{name:<30} {ratio:5.2f}  {v:13d}  {d:6d}  {a:8d}")

    row("default (k 12, n 2..4)")
    row("latest place only (vLLM's)", agreement=False)
    for k in (4, 8, 16):
        row(f"k {k}", k_max=k)
    row("n 1..4", min_n=1)
    row("n 3..4", min_n=3)
    row("n 2..8", max_n=8)
    row("back-off up to 8", max_backoff=8)
    row("back-off on empty lookups", empty_backoff=True)
    for scale in (0.9, 0.8, 0.5, 0.0):
        row(f"drafts x {scale}",
            cost=lambda rows, s=scale: step_ms(1) + s * (step_ms(rows) - step_ms(1)))


if __name__ == "__main__":
    main()
