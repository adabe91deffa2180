#!/usr/bin/env python3
"""Replays greedy outputs through the n-gram proposer and the batch-1 speculation policy, with a
cost model, to see what a policy or a cheaper verification would give without running the model.

Input: a `pagoda generate --output FILE` JSONL of greedy outputs (prompt_token_ids, token_ids),
in the order the requests ran (they finish in that order at batch 1: the lookup history sees the
earlier ones); the output text is the same with speculation on and off, so each token's
predictability is fixed. Modelled as the engine runs one sequence (engine/ngram_proposer.cc,
engine/lookup_history.cc, engine/batching_policy.cc, engine/scheduler.cc):
  - the proposer: the longest suffix of prompt_lookup_min..max tokens that occurred before in the
    sequence, its latest 8 places voting (agreement); where that proposes nothing, the same over
    the finished sequences (with a history: a suffix of at least a token pair);
  - pipelining: after a step without drafts the next one is planned with that step's token in
    flight; its lookup then guesses the token (one known token fewer in the suffix, the guess not
    voted on) and the drafts ride behind the guess, dropped at no cost when it is wrong. After a
    verification, and within --wait-tokens outputs of an accepted draft (the engine's
    kLookupWaitTokens; 0: never), the lookup waits for the token instead, at --wait-ms a wait;
  - the adaptive length: k = accepted + 1 after a partial acceptance, doubled after a whole one,
    capped at K; 1, 2, 4 steps without lookups after a rejected single draft.
The engine's counts (verifications, drafts, accepted) match these within a few drafts
(docs/performance.md, run 16). A step computing r rows (a decode: 1; a verification of n drafts:
n + 1) costs STEP_MS[r - 1] ms: by default `BM_VerifyStep/<n>/256` of SmolLM2-135M-Instruct Q4_1
on the 2-core AMD EPYC host (docs/performance.md, speculation run 14; past the table, the last
row's increment again). With --draft-ms instead, a decode costs D and a verification D + PER * n.
Prints the modelled on/off throughput ratio, verifications, drafts and accepted drafts for the
defaults, with a history, policy variants, and drafts made cheaper.

  pagoda generate --model M --prompts-file P --temperature 0 --max-num-seqs 1 --output out.jsonl
  benchmarks/speculative_policy_sim.py out.jsonl [--step-ms 3.77,4.22,...] [--draft-ms 0.7]
"""
import argparse
import json


MAX_VOTERS = 8  # NgramProposer::kMaxVoters
MAX_SCAN = 256  # LookupHistory::kMaxScan


class History:
    """LookupHistory without its size bound: sequences separated by -1, indexed by token pair."""

    def __init__(self):
        self.text, self.pairs = [], {}

    def add(self, tokens):
        base = len(self.text)
        self.text.extend(tokens)
        self.text.append(-1)
        for i in range(max(base, 1), len(self.text)):
            a, b = self.text[i - 1], self.text[i]
            if a >= 0 and b >= 0:
                self.pairs.setdefault((a, b), []).append(i)

    def find(self, tokens, min_n, max_n):
        min_n, size = max(min_n, 2), len(tokens)
        if size < min_n or max_n < min_n:
            return []
        best, places = 0, []
        for q in reversed(self.pairs.get((tokens[-2], tokens[-1]), [])[-MAX_SCAN:]):
            if self.text[q + 1] < 0:
                continue
            n = 2
            while n < max_n and n < size and q - n >= 0 and self.text[q - n] == tokens[-1 - n]:
                n += 1
            if n < min_n or n < best:
                continue
            if n > best:
                best, places = n, []
            if len(places) < MAX_VOTERS:
                places.append(q)
            if n == max_n and len(places) == MAX_VOTERS:
                break
        return places


def continuation(text, ends, max_tokens, num_unknown, agreement):
    start, drafts = ends[0] + 1, []
    for j in range(min(max_tokens, len(text) - start)):
        token = text[start + j]
        if token < 0:
            break
        if agreement:
            alive = [e for e in ends if text[e + 1 + j] == token]
            if len(alive) < len(ends) and not (j == 0 and num_unknown > 0):
                break
            ends = alive
        drafts.append(token)
    return drafts


def propose(tokens, max_tokens, min_n, max_n, num_unknown=0, agreement=True, history=None):
    size = len(tokens)
    if max_tokens <= 0 or size < 2:
        return []
    min_n = max(1, min_n - num_unknown)
    max_n = max(min_n, max_n - num_unknown)
    ends, best = [], 0  # the places of the longest suffix, latest first
    for p in range(size - 2, -1, -1):
        if tokens[p] != tokens[-1]:
            continue
        n = 1
        while n < max_n and p - n >= 0 and tokens[p - n] == tokens[size - 1 - n]:
            n += 1
        if n < min_n or n < best:
            continue
        if n > best:
            ends, best = [], n
        if len(ends) < MAX_VOTERS:
            ends.append(p)
        if n == max_n and len(ends) == (MAX_VOTERS if agreement else 1):
            break
    if ends:
        drafts = continuation(tokens, ends, max_tokens, num_unknown, agreement)
        if drafts:
            return drafts
    if history is None:
        return []
    places = history.find(tokens, min_n, max_n)
    return continuation(history.text, places, max_tokens, num_unknown, agreement) if places else []


def simulate(outputs, step_ms, k_max=12, min_n=2, max_n=4, agreement=True, history=False,
             wait_tokens=16, wait_ms=0.05, max_backoff=4):
    """step_ms(rows): the cost of a step computing `rows` rows."""
    decode_ms = step_ms(1)
    finished = History() if history else None
    on = off = 0.0
    verifications = drafts_total = accepted_total = 0
    for prompt, output in outputs:
        size = len(output)
        off += size * decode_ms
        # i: outputs known or in flight; the first comes from the prefill, in flight.
        i, pending, k, pipelined, backoff, accepted_at = 1, True, k_max, 0, 1, None
        on += decode_ms
        while i < size:
            if pipelined > 0:
                pipelined -= 1
                on += decode_ms
                i += 1
                pending = True
                continue
            room = min(k, size - i - 1)
            if pending and accepted_at is not None and i - 1 - accepted_at <= wait_tokens:
                pending = False  # waits for the token in flight, then looks up with it known
                on += wait_ms
            if pending:
                proposal = propose(prompt + output[:i - 1], room + 1, min_n, max_n, 1, agreement,
                                   finished) if room > 0 else []
                if len(proposal) < 2 or proposal[0] != output[i - 1]:
                    on += decode_ms  # nothing to verify, or the guess was wrong: a decode
                    i += 1
                    continue
                drafts = proposal[1:]
            else:
                drafts = propose(prompt + output[:i], room, min_n, max_n, 0, agreement,
                                 finished) if room > 0 else []
                if not drafts:
                    on += decode_ms
                    i += 1
                    pending = True
                    continue
            n, a = len(drafts), 0
            while a < n and drafts[a] == output[i + a]:
                a += 1
            verifications += 1
            drafts_total += n
            accepted_total += a
            on += step_ms(n + 1)
            k = min(k_max, 2 * max(k, 1)) if a == n else min(k_max, a + 1)
            if a > 0:
                accepted_at, backoff = i, 1
            elif n == 1:
                pipelined, backoff = backoff, min(2 * backoff, max_backoff)
            i += a + 1
            pending = False
        if finished is not None:
            finished.add(prompt + output)
    return off / on, verifications, drafts_total, accepted_total


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
    parser.add_argument("--wait-ms", type=float, default=0.05,
                        help="ms a wait for the token in flight costs")
    args = parser.parse_args()
    outputs = []
    with open(args.outputs) as f:
        for line in f:
            record = json.loads(line)
            outputs.append((record["prompt_token_ids"], record["token_ids"]))
    tokens = sum(len(o) for _, o in outputs)
    predictable = sum(
        propose(p + o[:i], 1, 2, 4, agreement=False) == [o[i]] for p, o in outputs
        for i in range(len(o)))
    print(f"{len(outputs)} outputs, {tokens} tokens, {predictable} predictable by a lookup "
          f"({100.0 * predictable / tokens:.1f} %)")
    print("variant                          ratio  verifications  drafts  accepted")
    step_ms = step_costs(args)

    def row(name, cost=step_ms, **kw):
        ratio, v, d, a = simulate(outputs, cost, wait_ms=args.wait_ms, **kw)
        print(f"{name:<32} {ratio:5.2f}  {v:13d}  {d:6d}  {a:8d}")

    row("default (k 12, n 2..4)")
    row("lookup history", history=True)
    row("latest place only (vLLM's)", agreement=False)
    row("never waits to look up", wait_tokens=-1)
    row("always waits to look up", wait_tokens=1 << 30)
    row("history, never waits", history=True, wait_tokens=-1)
    row("history, always waits", history=True, wait_tokens=1 << 30)
    for k in (4, 8, 16):
        row(f"k {k}", k_max=k)
    row("n 1..4", min_n=1)
    row("n 3..4", min_n=3)
    row("n 2..8", max_n=8)
    row("back-off up to 8", max_backoff=8)
    for scale in (0.9, 0.8, 0.5, 0.0):
        row(f"drafts x {scale}",
            cost=lambda rows, s=scale: step_ms(1) + s * (step_ms(rows) - step_ms(1)))


if __name__ == "__main__":
    main()
