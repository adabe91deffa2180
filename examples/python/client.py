#!/usr/bin/python3
"""A command-line client for Pagoda's public gRPC API (pagoda.v1.Generation).

Streams a completion as it is generated, then prints the finish reason and the token usage:

    /usr/bin/python3 examples/python/client.py --target localhost:50051 \\
        --prompt "Once upon a time" --max-tokens 32 --temperature 0

The Python stubs are generated at run time from proto/pagoda/v1/generation.proto into a temporary
directory, so nothing needs building; it needs grpcio and grpcio-tools (Debian: python3-grpcio,
python3-grpc-tools). See README.md.
"""

import argparse
import importlib
import os
import re
import sys
import tempfile

DEFAULT_PROTO_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
PROTO_FILE = "pagoda/v1/generation.proto"


# proto3 `optional` needs protoc >= 3.15, but Debian's python3-grpc-tools bundles protoc 3.5.1.
# `optional T name = N;` is a one-field oneof on the wire (protoc itself lowers it to the
# "synthetic" oneof `_name`), so the stubs are generated from that spelling: the same bytes, and
# HasField() still tells an explicit zero from an unset field, with any protoc.
_OPTIONAL_FIELD = re.compile(r"^(\s*)optional\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;", re.MULTILINE)


def load_stubs(proto_dir):
    """Compiles generation.proto with grpc_tools.protoc; returns (pb2, pb2_grpc)."""
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit("error: grpc_tools is missing: install python3-grpc-tools (Debian) or "
                 "grpcio-tools (pip), and run this script with that interpreter "
                 "(/usr/bin/python3 for the Debian packages)")
    source = os.path.join(proto_dir, PROTO_FILE)
    try:
        with open(source, encoding="utf-8") as f:
            text = _OPTIONAL_FIELD.sub(r"\1oneof _\3 { \2 \3 = \4; }", f.read())
    except OSError as e:
        sys.exit(f"error: cannot read {source} ({e.strerror}); see --proto-dir")
    with tempfile.TemporaryDirectory(prefix="pagoda_stubs_") as tmp:
        src_dir = os.path.join(tmp, "src")
        out_dir = os.path.join(tmp, "out")
        os.makedirs(os.path.join(src_dir, os.path.dirname(PROTO_FILE)))
        os.makedirs(out_dir)
        with open(os.path.join(src_dir, PROTO_FILE), "w", encoding="utf-8") as f:
            f.write(text)
        rc = protoc.main(["grpc_tools.protoc", f"-I{src_dir}", f"--python_out={out_dir}",
                          f"--grpc_python_out={out_dir}", PROTO_FILE])
        if rc != 0:
            sys.exit(f"error: grpc_tools.protoc failed on {source}")
        # The generated modules import each other as pagoda.v1.*; once imported they no longer
        # need the files.
        sys.path.insert(0, out_dir)
        try:
            pb2 = importlib.import_module("pagoda.v1.generation_pb2")
            pb2_grpc = importlib.import_module("pagoda.v1.generation_pb2_grpc")
        finally:
            sys.path.remove(out_dir)
    return pb2, pb2_grpc


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Stream a completion from a Pagoda server (pagoda.v1.Generation).")
    parser.add_argument("--target", default="localhost:50051",
                        help="host:port of pagoda-router's gRPC port (default %(default)s)")
    parser.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR,
                        help="directory holding pagoda/v1/generation.proto (default: the "
                             "repository's proto/)")
    parser.add_argument("--api-key", default=os.environ.get("PAGODA_API_KEY", ""),
                        help="sent as the 'authorization: Bearer KEY' metadata "
                             "(default: $PAGODA_API_KEY)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="deadline of each call in seconds (default: none)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--prompt", help="text prompt")
    what.add_argument("--token-ids", help="prompt as comma-separated token ids")
    what.add_argument("--list-models", action="store_true", help="list the served models")
    what.add_argument("--server-info", action="store_true",
                      help="print the server's version, limits and replicas")
    parser.add_argument("--model", default="", help="model id (default: the served model)")
    parser.add_argument("--request-id", default="", help="default: the server assigns one")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                        help="print text as it is generated (Generate) or all at the end "
                             "(Complete); default --stream")
    parser.add_argument("--no-special-tokens", action="store_true",
                        help="do not add BOS to a text prompt")
    sampling = parser.add_argument_group("sampling (unset: the server's defaults)")
    sampling.add_argument("--max-tokens", type=int)
    sampling.add_argument("--min-tokens", type=int)
    sampling.add_argument("--temperature", type=float, help="0: greedy")
    sampling.add_argument("--top-p", type=float)
    sampling.add_argument("--top-k", type=int)
    sampling.add_argument("--min-p", type=float)
    sampling.add_argument("--repetition-penalty", type=float)
    sampling.add_argument("--presence-penalty", type=float)
    sampling.add_argument("--frequency-penalty", type=float)
    sampling.add_argument("--seed", type=int)
    sampling.add_argument("--logprobs", type=int,
                          help="print each token's logprob and this many alternatives")
    sampling.add_argument("--n", type=int, help="completions per request")
    sampling.add_argument("--beam-width", type=int, help=">= 2: beam search")
    sampling.add_argument("--stop", action="append", default=[],
                          help="stop string (repeatable)")
    sampling.add_argument("--stop-token-id", type=int, action="append", default=[],
                          help="stop token id (repeatable)")
    sampling.add_argument("--ignore-eos", action="store_true")
    args = parser.parse_args(argv)
    if not (args.prompt is not None or args.token_ids or args.list_models or args.server_info):
        parser.error("one of --prompt, --token-ids, --list-models, --server-info is required")
    return args


def build_request(pb2, args):
    request = pb2.GenerateRequest(request_id=args.request_id, model=args.model)
    if args.token_ids:
        try:
            ids = [int(t) for t in args.token_ids.split(",") if t.strip()]
        except ValueError:
            sys.exit(f"error: --token-ids must be comma-separated integers, got {args.token_ids!r}")
        request.token_ids.ids.extend(ids)
    else:
        request.text = args.prompt
    if args.no_special_tokens:
        request.add_special_tokens = False
    s = request.sampling
    # Only what was given is set: unset optional fields take the server's defaults.
    for field in ("max_tokens", "min_tokens", "temperature", "top_p", "top_k", "min_p",
                  "repetition_penalty", "presence_penalty", "frequency_penalty", "seed",
                  "logprobs", "n", "beam_width"):
        value = getattr(args, field)
        if value is None:
            continue
        if field == "seed":
            value &= (1 << 64) - 1  # like vLLM, a negative seed is taken modulo 2^64
        try:
            setattr(s, field, value)
        except ValueError as e:
            sys.exit(f"error: --{field.replace('_', '-')} {value}: {e}")
    s.stop.extend(args.stop)
    s.stop_token_ids.extend(args.stop_token_id)
    s.ignore_eos = args.ignore_eos
    return request


def finish_line(pb2, completion):
    reason = pb2.FinishReason.Name(completion.finish_reason).removeprefix("FINISH_REASON_")
    line = f"finish_reason: {reason.lower()}"
    which = completion.WhichOneof("stop_reason")
    if which == "stop_str":
        line += f" (stop string {completion.stop_str!r})"
    elif which == "stop_token_id":
        line += f" (stop token {completion.stop_token_id})"
    if completion.HasField("cumulative_logprob"):
        line += f", cumulative_logprob: {completion.cumulative_logprob:.4f}"
    return line


def print_logprobs(logprobs):
    for lp in logprobs:
        alternatives = ", ".join(f"{t.token_id}: {t.logprob:.4f}" for t in lp.top)
        print(f"  token {lp.token_id}: {lp.logprob:.4f}" +
              (f"  [{alternatives}]" if alternatives else ""))


def print_usage(usage):
    print(f"usage: prompt_tokens={usage.prompt_tokens} "
          f"completion_tokens={usage.completion_tokens} total_tokens={usage.total_tokens}")


def metadata(args):
    """The call metadata: the API key, when one is given."""
    return (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()


def generate(pb2, stub, args):
    request = build_request(pb2, args)
    if not args.stream:
        response = stub.Complete(request, timeout=args.timeout, metadata=metadata(args))
        for c in sorted(response.completions, key=lambda c: c.index):
            if len(response.completions) > 1:
                print(f"--- completion {c.index}")
            print(c.text)
            print_logprobs(c.logprobs)
            print(finish_line(pb2, c))
        print_usage(response.usage)
        return

    # One completion streams straight to the terminal; several are gathered per index, since
    # their deltas interleave, and printed once finished.
    single = (args.n or 1) == 1
    texts, logprobs, last = {}, {}, {}
    usage = None
    call = stub.Generate(request, timeout=args.timeout, metadata=metadata(args))
    try:
        for response in call:
            for c in response.outputs:
                texts[c.index] = texts.get(c.index, "") + c.text
                logprobs.setdefault(c.index, []).extend(c.logprobs)
                last[c.index] = c
                if single:
                    sys.stdout.write(c.text)
                    sys.stdout.flush()
            if response.finished:
                usage = response.usage
    except KeyboardInterrupt:
        call.cancel()  # the server aborts the request and frees its KV blocks
        raise
    except Exception:
        if single and any(texts.values()):
            print()  # end the partial line before the error
        raise
    if single:
        print()
    for index in sorted(last):
        if not single:
            print(f"--- completion {index}")
            print(texts[index])
        print_logprobs(logprobs[index])
        print(finish_line(pb2, last[index]))
    if usage is not None:
        print_usage(usage)


def list_models(pb2, stub, args):
    for m in stub.ListModels(pb2.ListModelsRequest(), timeout=args.timeout, metadata=metadata(args)).models:
        print(f"{m.id}  max_model_len={m.max_model_len} vocab_size={m.vocab_size} "
              f"owned_by={m.owned_by or '-'}")


def server_info(pb2, stub, args):
    info = stub.GetServerInfo(pb2.GetServerInfoRequest(), timeout=args.timeout, metadata=metadata(args))
    print(f"version: {info.version}")
    print(f"model: {info.model} (max_model_len {info.max_model_len})")
    print(f"scheduling_policy: {info.scheduling_policy}")
    print(f"max_n: {info.max_n}, max_queued_requests: {info.max_queued_requests}")
    for r in info.replicas:
        print(f"replica {r.index}: {r.state}, tp_size {r.tp_size}, "
              f"running {r.num_running_requests}, waiting {r.num_waiting_requests}, "
              f"kv_cache_usage {100 * r.kv_cache_usage:.1f}%, "
              f"prefix cache {r.prefix_cache_hits}/{r.prefix_cache_queries} tokens, "
              f"preemptions {r.num_preemptions}, restarts {r.num_restarts}")
        print(f"  workers: {', '.join(r.worker_addresses) or '-'}")
        if r.last_error:
            print(f"  last_error: {r.last_error}")


def main(argv):
    args = parse_args(argv)
    try:
        import grpc
    except ImportError:
        sys.exit("error: grpc is missing: install python3-grpcio (Debian) or grpcio (pip), and "
                 "run this script with that interpreter (/usr/bin/python3 for Debian's)")
    pb2, pb2_grpc = load_stubs(args.proto_dir)
    with grpc.insecure_channel(args.target) as channel:
        stub = pb2_grpc.GenerationStub(channel)
        try:
            if args.list_models:
                list_models(pb2, stub, args)
            elif args.server_info:
                server_info(pb2, stub, args)
            else:
                generate(pb2, stub, args)
        except grpc.RpcError as e:
            sys.stdout.flush()
            print(f"error: {e.code().name} from {args.target}: {e.details()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
