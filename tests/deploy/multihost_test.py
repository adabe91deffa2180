#!/usr/bin/env python3
"""Multi-host serving in network namespaces: one router and 2 replicas x 2 tensor-parallel
workers, each process in its own network namespace (its own address, its own /etc/hosts), all
on one bridge, as pods on a cluster network are, with a DNS server (in the router's namespace)
that answers for the same names as a cluster's DNS does. Workers are addressed by names only
(the names a Kubernetes headless Service gives StatefulSet pods), never by IP.

  1. Greedy streams through the router's OpenAI HTTP API (from the router's namespace) give the
     reference outputs.
  2. The same streams again; once every stream has output, one worker's link goes down. Its
     replica leaves the rotation and its requests continue on the other replica: no client
     error, outputs identical to the reference.
  3. The link comes back: the replica is re-initialized and rejoins (/ready, restart counter).
  4. The same worker is killed, its name stops resolving for a while (a deleted pod's DNS
     record is gone until the pod is rescheduled), and it comes back at a *new* address under
     the same name: the router resolves the name again, the replica rejoins and serves the
     reference outputs again (the Gloo group re-forms over the new address too).
  5. A rolling restart under steady load, as `kubectl rollout restart` of the worker
     StatefulSets does it: each of the 4 workers in turn gets SIGTERM, drains (its replica's
     requests move to the other replica while it still answers), exits 0 and is started again;
     the next one goes only once both replicas are ready. Clients stream all along: no request
     fails and every stream equals the reference.

Needs root (ip netns, veth, bridge); exits 77 (CTest's skip code) with the reason when it may
not create a network namespace. Everything it makes carries the prefix "pgmh<pid>" and is
removed on exit, failure included; leftovers of earlier runs whose process is gone are removed
at start.

  multihost_test.py --bin-dir build/bin --shared-dir ../shared [--keep-logs]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
PREFIX_RE = re.compile(r"pgmh(\d+)")
SUBNET = "10.251.0"
DNS_ADDRESS = f"{SUBNET}.10"  # the router's namespace
ROUTER_HTTP_PORT = 8000
ROUTER_GRPC_PORT = 50051
WORKER_PORT = 50061
WORKER_METRICS_PORT = 9400
NAMESPACE_DOMAIN = "pagoda.svc.cluster.local"  # as a headless Service's names read

PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "The little dog",
           "One day, a boy", "The sun was", "Sara had a red ball", "A cat", "Tim liked"]
MAX_TOKENS = 240  # stories260K's context is 512: long streams, so the fault lands mid-stream


def log(message):
    print(f"[multihost] {message}", flush=True)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies, however it dies."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def netns_names():
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_prefix(prefix_filter):
    """Removes namespaces (and their processes), links and /etc/netns files whose prefix
    satisfies prefix_filter(pid)."""
    for ns in netns_names():
        m = PREFIX_RE.match(ns)
        if not m or not prefix_filter(int(m.group(1))):
            continue
        for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run("ip", "netns", "del", ns, check=False)
    for line in run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(":")
        if len(fields) < 2:
            continue
        name = fields[1].strip().split("@")[0]
        m = PREFIX_RE.fullmatch(name) or PREFIX_RE.match(name)
        if m and prefix_filter(int(m.group(1))):
            run("ip", "link", "del", name, check=False)
    if os.path.isdir("/etc/netns"):
        for entry in os.listdir("/etc/netns"):
            m = PREFIX_RE.match(entry)
            if m and prefix_filter(int(m.group(1))):
                shutil.rmtree(os.path.join("/etc/netns", entry), ignore_errors=True)


class Cluster:
    """The namespaces, the bridge, the processes; close() undoes all of it."""

    def __init__(self, bin_dir, model_dir, work_dir):
        self.prefix = f"pgmh{os.getpid()}"
        self.bin_dir = bin_dir
        self.model_dir = model_dir
        self.work_dir = work_dir
        self.bridge = self.prefix
        self.hosts = {}  # name -> (namespace, address, veth on the bridge)
        self.unnamed = set()  # hosts whose name resolves nowhere (a deleted pod's)
        self.procs = {}  # name -> Popen
        self.log_files = {}

    # --- network ---------------------------------------------------------------------------
    def add_host(self, name, index, address):
        ns = f"{self.prefix}-{index}"
        veth = f"{self.prefix}v{index}"
        peer = f"{self.prefix}p{index}"
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", peer, "netns", ns)
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run("ip", "-n", ns, "link", "set", peer, "name", "eth0")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = [ns, address, veth]

    def write_name_files(self):
        """Each namespace's /etc/hosts and resolv.conf (ip netns exec bind-mounts them over
        /etc). Rewritten in place, never replaced: running processes see the bind-mounted
        inode, so a new address reaches them as a new DNS answer would."""
        lines = ["127.0.0.1 localhost"]
        for name, (_, address, _) in self.hosts.items():
            if name in self.unnamed:
                continue
            short = name.split(".")[0]
            lines.append(f"{address} {name} {short}")
        text = "\n".join(lines) + "\n"
        for ns, _, _ in self.hosts.values():
            directory = os.path.join("/etc/netns", ns)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "hosts"), "w", encoding="utf-8") as f:
                f.write(text)
            # The cluster's DNS: the test's server in the router's namespace (dns_main).
            with open(os.path.join(directory, "resolv.conf"), "w", encoding="utf-8") as f:
                f.write(f"nameserver {DNS_ADDRESS}\noptions timeout:1 attempts:2\n")

    def set_link(self, name, up):
        run("ip", "link", "set", self.hosts[name][2], "up" if up else "down")

    def unname_host(self, name):
        self.unnamed.add(name)
        self.write_name_files()

    def move_host(self, name, new_address):
        """Gives the host another address, under its name again."""
        ns, old, _ = self.hosts[name]
        run("ip", "-n", ns, "addr", "del", f"{old}/24", "dev", "eth0")
        run("ip", "-n", ns, "addr", "add", f"{new_address}/24", "dev", "eth0")
        self.hosts[name][1] = new_address
        self.unnamed.discard(name)
        self.write_name_files()

    # --- processes -------------------------------------------------------------------------
    def start(self, name, args):
        ns = self.hosts[name][0]
        log_path = os.path.join(self.work_dir, f"{name.split('.')[0]}.log")
        log_file = open(log_path, "ab")
        self.log_files[name] = log_path
        self.procs[name] = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=log_file,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=die_with_parent)
        log_file.close()

    def stop(self, name, sig=signal.SIGTERM):
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def exec_in(self, name, args, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.hosts[name][0]] + args,
                                preexec_fn=die_with_parent, **kwargs)

    def log_tails(self, lines=25):
        out = []
        for name, path in self.log_files.items():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {name} ({path}) ---\n" + "\n".join(tail))
        return "\n".join(out)

    def close(self):
        # All at once (the router first, so no stream waits on a stopping worker), then wait.
        procs = sorted(self.procs.items(), key=lambda item: not item[0].startswith("pagoda-router"))
        for _, proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        remove_prefix(lambda pid: pid == os.getpid())


# --- the DNS server, run inside the router's namespace ---------------------------------------

def dns_answer(query, hosts):
    """The reply to one DNS query: A records from `hosts`, no other records (NODATA) for a known
    name, NXDOMAIN for an unknown one. Like a cluster's DNS for pod names, and fast: gRPC's
    resolver asks for AAAA records too, which no hosts file here answers."""
    qid, flags = struct.unpack(">HH", query[:4])
    i = 12
    labels = []
    while query[i] != 0:
        length = query[i]
        labels.append(query[i + 1:i + 1 + length].decode("ascii"))
        i += 1 + length
    qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
    question = query[12:i + 5]
    name = ".".join(labels).lower().rstrip(".")
    answer = b""
    rcode = 0
    if name not in hosts:
        rcode = 3  # NXDOMAIN
    elif qtype == 1:  # A
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(hosts[name])
    header = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100) | rcode, 1,
                         1 if answer else 0, 0, 0)
    return header + question + answer


def dns_main(address):
    """Serves the namespace's /etc/hosts (re-read per query) as DNS on address:53."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    print("DNS", flush=True)
    while True:
        query, peer = sock.recvfrom(512)
        hosts = {}
        with open("/etc/hosts", encoding="utf-8") as f:
            for line in f:
                fields = line.split("#")[0].split()
                if len(fields) >= 2 and ":" not in fields[0]:
                    for name in fields[1:]:
                        hosts[name.lower()] = fields[0]
        try:
            sock.sendto(dns_answer(query, hosts), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue


# --- the client, run inside the router's namespace ------------------------------------------

def stream_completion(host, port, prompt, max_tokens, on_first):
    """One streamed greedy completion; returns {"text", "finish_reason", "error"}."""
    body = json.dumps({"model": "stories260K", "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0, "ignore_eos": True, "stream": True})
    result = {"text": "", "finish_reason": None, "error": None}
    try:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            result["error"] = f"HTTP {response.status}: {response.read()[:300]!r}"
            return result
        first = True
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                result["error"] = json.dumps(event["error"])
                break
            for choice in event.get("choices", []):
                result["text"] += choice.get("text") or ""
                if choice.get("finish_reason"):
                    result["finish_reason"] = choice["finish_reason"]
            if first:
                first = False
                on_first()
        conn.close()
    except Exception as e:  # reported to the test, which fails on it
        result["error"] = f"{type(e).__name__}: {e}"
    return result


def client_main(args):
    """Streams every prompt at once; prints STREAMING once each has output, then every result as
    one JSON line of [prompt index, result] pairs. With --steady-until FILE each prompt's stream
    is started again as soon as it ends, until FILE exists (steady load)."""
    host, port = args.client.rsplit(":", 1)
    results = []
    started = set()
    lock = threading.Lock()

    def one(i):
        def on_first():
            with lock:
                if i not in started:
                    started.add(i)
                    if len(started) == len(PROMPTS):
                        print("STREAMING", flush=True)

        while True:
            result = stream_completion(host, int(port), PROMPTS[i], args.max_tokens, on_first)
            with lock:
                results.append([i, result])
            if not args.steady_until or os.path.exists(args.steady_until):
                break

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results), flush=True)
    return 0


def http_get_in(cluster, name, url):
    """GET `url` from inside `name`'s namespace; returns (status, body)."""
    code = ("import sys,urllib.request,urllib.error\n"
            "try:\n r=urllib.request.urlopen(sys.argv[1],timeout=5); print(r.status); "
            "sys.stdout.write(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n print(e.code); sys.stdout.write(e.read().decode())\n"
            "except Exception as e:\n print(0); sys.stdout.write(str(e))\n")
    proc = cluster.exec_in(name, [sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    status, _, body = out.partition("\n")
    return int(status or 0), body


# --- the test --------------------------------------------------------------------------------

class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def wait_for(what, predicate, timeout_s, interval_s=0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir")
    parser.add_argument("--source-dir")  # accepted as CMake passes it; unused
    parser.add_argument("--shared-dir")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the streaming client
    parser.add_argument("--dns-server", help=argparse.SUPPRESS)  # internal: the DNS server
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help=argparse.SUPPRESS)
    parser.add_argument("--steady-until", help=argparse.SUPPRESS)  # internal: steady load
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = parser.parse_args()
    if args.client:
        return client_main(args)
    if args.dns_server:
        return dns_main(args.dns_server)
    if not args.bin_dir or not args.shared_dir:
        parser.error("--bin-dir and --shared-dir are required")
    stories_dir = os.path.join(args.shared_dir, "models", "stories260K")

    # SIGTERM (a test runner giving up) unwinds through the cleanup below, as SIGINT does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("SKIP: needs root and iproute2 (ip netns) to build the namespaces")
        return SKIP
    probe = f"pgmh{os.getpid()}-probe"
    result = run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        print(f"SKIP: 'ip netns add' is not permitted here: {result.stderr.strip()}")
        return SKIP
    run("ip", "netns", "del", probe, check=False)
    # Leftovers of runs that died without cleaning up (their pid is gone).
    remove_prefix(lambda pid: pid != os.getpid() and not pid_alive(pid))

    work_dir = tempfile.mkdtemp(prefix="pagoda_multihost_")
    cluster = Cluster(args.bin_dir, os.path.join(work_dir, "stories260K"), work_dir)
    ok = False
    try:
        run(os.path.join(args.bin_dir, "pagoda"), "convert", "llama2c", "--checkpoint",
            os.path.join(stories_dir, "stories260K.bin"), "--tokenizer",
            os.path.join(stories_dir, "tok512.bin"), "--out", cluster.model_dir)
        run_test(cluster)
        ok = True
    except Failure as e:
        print(f"FAILED: {e}\n{cluster.log_tails()}", flush=True)
    except Exception:
        traceback.print_exc()
        print(cluster.log_tails(), flush=True)
    finally:
        cluster.close()
        leftovers = [ns for ns in netns_names() if ns.startswith(cluster.prefix)]
        if leftovers:
            print(f"FAILED: namespaces left behind: {leftovers}")
            ok = False
        if ok and not args.keep_logs:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"logs kept in {work_dir}")
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed", flush=True)
    return 0 if ok else 1


def worker_name(replica, rank):
    return f"pagoda-worker-r{replica}-{rank}.pagoda-worker-r{replica}.{NAMESPACE_DOMAIN}"


def run_test(cluster):
    run("ip", "link", "add", cluster.bridge, "type", "bridge")
    run("ip", "link", "set", cluster.bridge, "up")
    cluster.add_host(f"pagoda-router.{NAMESPACE_DOMAIN}", 0, f"{SUBNET}.10")
    router = f"pagoda-router.{NAMESPACE_DOMAIN}"
    index = 1
    for replica in range(2):
        for rank in range(2):
            cluster.add_host(worker_name(replica, rank), index, f"{SUBNET}.{20 + 10 * replica + rank}")
            index += 1
    cluster.write_name_files()
    dns = cluster.exec_in(router, [sys.executable, os.path.abspath(__file__),
                                   f"--dns-server={DNS_ADDRESS}"], stdout=subprocess.PIPE, text=True)
    cluster.procs["dns"] = dns
    expect(dns.stdout.readline().strip() == "DNS", "the DNS server did not start")

    def start_worker(name):
        # --comm-host is the worker's own name: Gloo resolves it at every Init, so a worker that
        # moved publishes its new address to its peers.
        cluster.start(name, [os.path.join(cluster.bin_dir, "pagoda-worker"), "--host", "0.0.0.0",
                             f"--port={WORKER_PORT}", f"--comm-host={name}",
                             f"--metrics-port={WORKER_METRICS_PORT}"])

    for replica in range(2):
        for rank in range(2):
            start_worker(worker_name(replica, rank))
    replica_flags = []
    for replica in range(2):
        replica_flags.append("--replica=" + ",".join(
            f"{worker_name(replica, rank)}:{WORKER_PORT}" for rank in range(2)))
    # Failure detection in seconds: a step that takes 3 s fails its replica, health every 200 ms.
    cluster.start(router, [os.path.join(cluster.bin_dir, "pagoda-router"),
                           f"--model={cluster.model_dir}", *replica_flags,
                           f"--grpc-port={ROUTER_GRPC_PORT}", f"--http-port={ROUTER_HTTP_PORT}",
                           "--routing-policy=round_robin", "--num-gpu-blocks-override=512",
                           "--step-timeout-s=3", "--health-interval-ms=200",
                           "--failover-wait-s=60"])
    base = f"http://{router}:{ROUTER_HTTP_PORT}"

    def ready_states():
        status, body = http_get_in(cluster, router, f"{base}/ready")
        if status not in (200, 503):
            return None
        try:
            return [r["state"] for r in json.loads(body)["replicas"]]
        except (ValueError, KeyError):
            return None

    def metric(name, labels=""):
        status, body = http_get_in(cluster, router, f"{base}/metrics")
        expect(status == 200, f"GET /metrics answered {status}")
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if labels in line:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    wait_for("both replicas ready (workers reached by name across namespaces)",
             lambda: ready_states() == ["ready", "ready"], 60)
    log("router and 4 workers up in 5 namespaces; both replicas ready")
    # The workers' own health endpoint, from the router's namespace.
    status, body = http_get_in(cluster, router,
                               f"http://{worker_name(0, 1)}:{WORKER_METRICS_PORT}/health")
    expect(status == 200 and json.loads(body)["state"] == "READY",
           f"worker /health answered {status} {body}")

    def start_client():
        return cluster.exec_in(router, [sys.executable, os.path.abspath(__file__), "--client",
                                        f"{router}:{ROUTER_HTTP_PORT}"],
                               stdout=subprocess.PIPE, text=True)

    def finish_client(proc, timeout_s=90):
        out, _ = proc.communicate(timeout=timeout_s)
        lines = [line for line in out.splitlines() if line.startswith("[")]
        expect(proc.returncode == 0 and lines, f"client failed ({proc.returncode}): {out[-500:]}")
        return [result for _, result in sorted(json.loads(lines[-1]), key=lambda p: p[0])]

    def check_results(results, reference, what):
        for prompt, got, want in zip(PROMPTS, results, reference):
            expect(got["error"] is None, f"{what}: '{prompt}' failed: {got['error']}")
            expect(got["text"] == want["text"],
                   f"{what}: '{prompt}' differs from the reference:\n{got['text']!r}\n"
                   f"vs\n{want['text']!r}")
            expect(got["finish_reason"] == "length",
                   f"{what}: '{prompt}' finished with {got['finish_reason']}")

    # 1. Reference.
    started = time.monotonic()
    reference = finish_client(start_client())
    for prompt, r in zip(PROMPTS, reference):
        expect(r["error"] is None and r["text"], f"reference '{prompt}' failed: {r['error']}")
    log(f"reference: {len(PROMPTS)} streams x {MAX_TOKENS} tokens in "
        f"{time.monotonic() - started:.1f} s")

    # 2. Cut rank 1 of replica 0 off the network while every stream runs.
    victim = worker_name(0, 1)
    failovers_before = metric("pagoda:request_failovers_total")
    proc = start_client()
    line = proc.stdout.readline().strip()
    expect(line == "STREAMING", f"client did not start streaming: {line!r}")
    cluster.set_link(victim, up=False)
    cut_at = time.monotonic()
    results = finish_client(proc)
    log(f"link of {victim.split('.')[0]} down; streams finished "
        f"{time.monotonic() - cut_at:.1f} s later")
    check_results(results, reference, "during the fault")
    failovers = metric("pagoda:request_failovers_total") - failovers_before
    expect(failovers >= 1, "no request moved to the other replica: the fault came too late "
           "(every stream had finished) or failover is broken")
    states = ready_states()
    expect(states is not None and states[0] != "ready" and states[1] == "ready",
           f"replica 0 should be out of rotation while its worker is cut off: {states}")
    log(f"{failovers:.0f} request(s) moved to replica 1 with no client error; outputs "
        "identical; replica 0 is " + states[0])

    # 3. Restore the link: replica 0 is re-initialized and rejoins.
    restarts_before = metric("pagoda:replica_restarts_total", 'replica="0"')
    cluster.set_link(victim, up=True)
    restored_at = time.monotonic()
    wait_for("replica 0 to rejoin after the link came back",
             lambda: ready_states() == ["ready", "ready"], 90)
    expect(metric("pagoda:replica_restarts_total", 'replica="0"') > restarts_before,
           "replica 0 did not count a re-initialization")
    log(f"link restored: replica 0 rejoined {time.monotonic() - restored_at:.1f} s later")

    # 4. The worker is rescheduled at another address under the same name. As with a deleted
    # pod, the name resolves nowhere for a while first.
    cluster.stop(victim, signal.SIGKILL)
    cluster.unname_host(victim)
    wait_for("replica 0 to notice the killed worker", lambda: (ready_states() or [""])[0] != "ready",
             30, 0.2)
    time.sleep(8)  # failed resolutions back off; the router must not wait on that backoff
    cluster.move_host(victim, f"{SUBNET}.121")
    start_worker(victim)
    moved_at = time.monotonic()
    wait_for("replica 0 to rejoin with its worker at a new address",
             lambda: ready_states() == ["ready", "ready"], 90)
    log(f"worker restarted at {SUBNET}.121: replica 0 rejoined {time.monotonic() - moved_at:.1f} s "
        "later (its name re-resolved by the router and by its Gloo peer)")
    generation_tokens = lambda: metric("pagoda:generation_tokens_total", 'replica="0"')
    tokens_before = generation_tokens()
    results = finish_client(start_client())
    check_results(results, reference, "after the move")
    expect(generation_tokens() > tokens_before, "replica 0 served nothing after the move")
    log("after the move both replicas serve the reference outputs")

    # 5. A rolling restart of every worker under steady load. The StatefulSet controller's order:
    # one pod at a time, highest ordinal first, the next only once the restarted one is ready.
    stop_file = os.path.join(cluster.work_dir, "steady.stop")
    failovers_before = metric("pagoda:request_failovers_total")
    steady = cluster.exec_in(router, [sys.executable, os.path.abspath(__file__), "--client",
                                      f"{router}:{ROUTER_HTTP_PORT}", f"--steady-until={stop_file}"],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = steady.stdout.readline().strip()
        expect(line == "STREAMING", f"steady client did not start streaming: {line!r}")
        rollout_started = time.monotonic()
        for replica in (1, 0):
            for rank in (1, 0):
                name = worker_name(replica, rank)
                proc = cluster.procs.pop(name)
                signalled_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=45)  # the drain's own bound is --drain-timeout-s=30
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise Failure(f"{name.split('.')[0]} did not exit within 45 s of SIGTERM")
                expect(code == 0, f"{name.split('.')[0]} exited with {code} after SIGTERM")
                exited_s = time.monotonic() - signalled_at
                start_worker(name)
                wait_for(f"both replicas ready after restarting {name.split('.')[0]}",
                         lambda: ready_states() == ["ready", "ready"], 90)
                log(f"rolling restart: {name.split('.')[0]} drained and exited 0 in "
                    f"{exited_s:.1f} s; both replicas ready "
                    f"{time.monotonic() - signalled_at:.1f} s after its SIGTERM")
        open(stop_file, "w").close()
        out, _ = steady.communicate(timeout=120)
    finally:
        open(stop_file, "w").close()
        if steady.poll() is None:
            steady.kill()
            steady.wait()
    lines = [line for line in out.splitlines() if line.startswith("[")]
    expect(steady.returncode == 0 and lines, f"steady client failed ({steady.returncode})")
    results = json.loads(lines[-1])
    for i, got in results:
        expect(got["error"] is None, f"rolling restart: '{PROMPTS[i]}' failed: {got['error']}")
        expect(got["text"] == reference[i]["text"],
               f"rolling restart: '{PROMPTS[i]}' differs from the reference:\n{got['text']!r}")
        expect(got["finish_reason"] == "length",
               f"rolling restart: '{PROMPTS[i]}' finished with {got['finish_reason']}")
    moved = metric("pagoda:request_failovers_total") - failovers_before
    expect(moved >= 1, "no request moved during the rolling restart: the drains found no "
           "request to hand over, so the test did not test the handover")
    log(f"rolling restart of 4 workers in {time.monotonic() - rollout_started:.1f} s under "
        f"steady load: {len(results)} streams, all identical to the reference, {moved:.0f} moved "
        "by drains, no client error")


if __name__ == "__main__":
    sys.exit(main())
