#!/usr/bin/python3
"""Charts of a `pagoda bench serve` result file (--result-json), written by `--plot DIR`.

    /usr/bin/python3 tools/bench/plot_bench.py RESULT.json OUT_DIR

Writes OUT_DIR/latency_cdf.png (empirical CDFs of TTFT, TPOT, ITL and E2E latency of the
successful requests) and OUT_DIR/throughput.png (output tokens/s and requests in flight over the
run). Output chunk times are start + TTFT + the running sum of the ITL gaps; a request's output
tokens are spread evenly over its chunks. Needs Debian's python3-matplotlib.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def cdf(axis, values_ms, title):
    values = sorted(values_ms)
    if not values:
        axis.set_title(f"{title} (no data)")
        return
    n = len(values)
    axis.step(values, [(i + 1) / n for i in range(n)], where="post")
    axis.set_title(title)
    axis.set_xlabel("ms")
    axis.set_ylabel("fraction of requests" if title != "ITL" else "fraction of gaps")
    axis.grid(True, alpha=0.3)
    for q, style in ((0.5, ":"), (0.99, "--")):
        value = values[min(n - 1, int(q * n))]
        axis.axvline(value, linestyle=style, color="gray", linewidth=0.8)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        result = json.load(f)
    for key in ("ttfts", "itls", "e2els", "tpots", "start_times", "output_lens", "errors"):
        if key not in result:
            print(f"plot_bench.py: {argv[1]} has no '{key}' (not a `pagoda bench serve` result)",
                  file=sys.stderr)
            return 1
    ok = [i for i, error in enumerate(result["errors"]) if not error]
    ttfts = [result["ttfts"][i] * 1000 for i in ok]
    tpots = [result["tpots"][i] * 1000 for i in ok if result["output_lens"][i] > 1]
    itls = [gap * 1000 for i in ok for gap in result["itls"][i]]
    e2els = [result["e2els"][i] * 1000 for i in ok]

    title = (f"{result.get('backend', '')} {result.get('model_id', '')}, "
             f"{result.get('dataset_name', '')} x {result.get('num_prompts', '')}, "
             f"rate {result.get('request_rate', '')}")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    cdf(axes[0][0], ttfts, "TTFT")
    cdf(axes[0][1], tpots, "TPOT")
    cdf(axes[1][0], itls, "ITL")
    cdf(axes[1][1], e2els, "E2E latency")
    fig.suptitle(f"Latency CDFs: {title}")
    fig.tight_layout()
    fig.savefig(f"{argv[2]}/latency_cdf.png", dpi=100)
    plt.close(fig)

    duration = max(result.get("duration", 0.0), 1e-6)
    bin_s = max(duration / 60, 0.05)
    num_bins = int(duration / bin_s) + 1
    tokens = [0.0] * num_bins
    in_flight = [0] * num_bins
    for i in ok:
        start = result["start_times"][i]
        chunk_times = [start + result["ttfts"][i]]
        for gap in result["itls"][i]:
            chunk_times.append(chunk_times[-1] + gap)
        per_chunk = result["output_lens"][i] / len(chunk_times)
        for t in chunk_times:
            tokens[min(num_bins - 1, int(t / bin_s))] += per_chunk
        end = start + result["e2els"][i]
        for b in range(int(start / bin_s), min(num_bins, int(end / bin_s) + 1)):
            in_flight[b] += 1
    times = [(b + 0.5) * bin_s for b in range(num_bins)]
    fig, axis = plt.subplots(figsize=(11, 5))
    axis.plot(times, [t / bin_s for t in tokens], label="output tokens/s")
    axis.set_xlabel("seconds since the start")
    axis.set_ylabel("output tokens/s")
    axis.grid(True, alpha=0.3)
    other = axis.twinx()
    other.plot(times, in_flight, color="tab:orange", label="requests in flight")
    other.set_ylabel("requests in flight")
    fig.legend(loc="upper right")
    axis.set_title(f"Throughput over time: {title}")
    fig.tight_layout()
    fig.savefig(f"{argv[2]}/throughput.png", dpi=100)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
