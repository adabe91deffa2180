"""A real Prometheus server (Debian's `prometheus`) with the shipped deploy/prometheus config
scrapes a `pagoda serve` cluster (router + 2 replicas x TP 2 workers). After a known workload,
PromQL answers the exact token and request counts; every PromQL expression of the Grafana
dashboard names only metrics the live /metrics endpoints export, and evaluates; the alert rules
load.

Run by ctest: .venv/bin/python prometheus_test.py --bin-dir B --source-dir S --shared-dir D
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import yaml

import pagoda_cluster
from pagoda_cluster import PagodaCluster, http

SCRAPE_INTERVAL = "1s"
MODEL = "stories260K"
# The dashboard's Grafana variables, as Grafana would fill them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*", "${model}": ".*"}


class Prometheus:
    """prometheus on loopback with deploy/prometheus's config, scraping the given targets."""

    def __init__(self, router_target, worker_targets):
        self.dir = tempfile.mkdtemp(prefix="pagoda_py_prometheus_")
        source = os.path.join(pagoda_cluster.SOURCE_DIR, "deploy", "prometheus")
        with open(os.path.join(source, "prometheus.yml")) as f:
            config = yaml.safe_load(f)
        config["global"]["scrape_interval"] = SCRAPE_INTERVAL
        config["global"]["evaluation_interval"] = SCRAPE_INTERVAL
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        shutil.copy(os.path.join(source, "alerts.yml"), self.dir)
        os.makedirs(os.path.join(self.dir, "targets"))
        for name, targets in [("router", [router_target]), ("workers", worker_targets)]:
            with open(os.path.join(self.dir, "targets", f"{name}.json"), "w") as f:
                json.dump([{"targets": targets}], f)
        self.config_file = os.path.join(self.dir, "prometheus.yml")
        self.port = pagoda_cluster.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={self.config_file}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if http("GET", self.url + "/-/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError("prometheus did not start:\n" + self.log_tail())
            time.sleep(0.1)

    def log_tail(self):
        with open(os.path.join(self.dir, "prometheus.log"), errors="replace") as f:
            return "\n".join(f.read().splitlines()[-30:])

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, _, body = http("GET", url, timeout=30)
        return status, json.loads(body)

    def query(self, expr):
        """An instant query's vector as [(labels, value)]; fails the caller on an error."""
        status, body = self.api("query", query=expr)
        if status != 200 or body["status"] != "success":
            raise AssertionError(f"{expr}: {body.get('error', body)}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def scalar(self, expr):
        result = self.query(expr)
        return result[0][1] if result else None

    def wait_for(self, expr, want, timeout=45):
        deadline = time.time() + timeout
        while True:
            got = self.scalar(expr)
            if got == want or time.time() > deadline:
                return got
            time.sleep(0.25)

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def dashboard_expressions():
    with open(os.path.join(pagoda_cluster.SOURCE_DIR, "deploy", "grafana", "pagoda.json")) as f:
        dashboard = json.load(f)
    exprs = []

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels", []))
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))

    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            exprs.append(query)
    return exprs


def metric_names(expr):
    """The metric names an expression selects (Pagoda's are namespaced with a colon)."""
    return set(re.findall(r"\b(pagoda(?:_worker)?:[A-Za-z0-9_:]+)", expr))


def exported_names(samples):
    return {name for name, _ in samples}


class PrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = PagodaCluster(replicas=2, tp=2)
        try:
            workers = [f"127.0.0.1:{port}" for port in cls.cluster.worker_metrics_ports()]
            cls.prometheus = Prometheus(f"127.0.0.1:{cls.cluster.http_port}", workers)
        except BaseException:
            cls.cluster.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.close()
        cls.cluster.close()

    def setUp(self):
        got = self.prometheus.wait_for("count(up == 1)", 5)
        self.assertEqual(got, 5, "router and 4 workers up:\n" + self.prometheus.log_tail())

    def run_workload(self):
        """A known workload; returns (requests, prompt tokens, generated tokens) from usage."""
        url = self.cluster.http_url + "/v1/completions"
        goldens = pagoda_cluster.load_goldens()
        totals = [0, 0, 0]

        def count(usage):
            totals[0] += 1
            totals[1] += usage["prompt_tokens"]
            totals[2] += usage["completion_tokens"]

        for golden in goldens[:3]:
            status, _, body = http("POST", url, {"prompt": golden["prompt"] or golden["prompt_ids"],
                                                 "max_tokens": 17, "temperature": 0})
            self.assertEqual(status, 200, body)
            count(json.loads(body)["usage"])
        status, _, body = http("POST", url, {"prompt": "The little dog", "n": 2, "max_tokens": 9,
                                             "temperature": 0.8, "seed": 3, "ignore_eos": True})
        self.assertEqual(status, 200, body)
        count(json.loads(body)["usage"])
        for max_tokens in (5, 23):
            status, _, body = http("POST", url, {"prompt": "Lily and Tom went to the park",
                                                 "max_tokens": max_tokens, "ignore_eos": True,
                                                 "stream": True,
                                                 "stream_options": {"include_usage": True}})
            self.assertEqual(status, 200, body)
            events = [json.loads(line[6:]) for line in body.decode().splitlines()
                      if line.startswith("data: {")]
            count(events[-1]["usage"])
        return totals

    def grpc_request(self):
        """One gRPC Generate through examples/python/client.py (pagoda:grpc_requests_total)."""
        client = os.path.join(pagoda_cluster.SOURCE_DIR, "examples", "python", "client.py")
        result = subprocess.run(
            [sys.executable, client, "--target", f"127.0.0.1:{self.cluster.state['router']['port']}",
             "--prompt", "Once upon a time", "--max-tokens", "4"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_promql_answers_the_exact_token_counts(self):
        # Other tests ran workloads too: PromQL must rise by exactly this workload's counts
        # from the live counters before it (the cluster is idle between tests).
        before = self.cluster.metrics()

        def base(name, **labels):
            return pagoda_cluster.metric_sum(before, name, **labels)

        requests, prompt_tokens, generated_tokens = self.run_workload()
        self.assertEqual(requests, 6)
        expected = {
            "sum(pagoda:generation_tokens_total)":
                base("pagoda:generation_tokens_total") + generated_tokens,
            "sum(pagoda:prompt_tokens_total)": base("pagoda:prompt_tokens_total") + prompt_tokens,
            "sum(pagoda:request_success_total)": base("pagoda:request_success_total") + requests,
            'sum(pagoda:http_requests_total{route="/v1/completions",code="200"})':
                base("pagoda:http_requests_total", route="/v1/completions", code="200")
                + requests,
            'sum(pagoda:e2e_request_latency_seconds_count{model_name="stories260K"})':
                base("pagoda:e2e_request_latency_seconds_count") + requests,
            "sum(pagoda:time_to_first_token_seconds_count)":
                base("pagoda:time_to_first_token_seconds_count") + requests,
        }
        for expr, want in expected.items():
            got = self.prometheus.wait_for(expr, want)
            self.assertEqual(got, want, f"{expr}\n{self.cluster.log_tails()}")
        # Workers: both ranks of a replica run every step, and their labels match the router's.
        deadline = time.time() + 30
        while True:  # until a scrape of every worker after the workload
            steps = {}
            for labels, value in self.prometheus.query(
                    "sum by (replica, rank) (pagoda_worker:step_latency_seconds_count)"):
                steps.setdefault(labels["replica"], {})[labels["rank"]] = value
            if all(len(set(r.values())) == 1 for r in steps.values()) or time.time() > deadline:
                break
            time.sleep(0.25)
        self.assertEqual(set(steps), {"0", "1"})
        for replica, ranks in steps.items():
            self.assertEqual(set(ranks), {"0", "1"}, replica)
            self.assertEqual(ranks["0"], ranks["1"], f"replica {replica}: {ranks}")
        router_replicas = {labels["replica"]
                           for labels, _ in self.prometheus.query("pagoda:replica_ready")}
        self.assertEqual(router_replicas, set(steps))
        self.assertGreater(self.prometheus.scalar("sum(pagoda_worker:batch_tokens_sum)"), 0)
        # Nothing left running: KV blocks free on every rank.
        self.assertEqual(self.prometheus.wait_for("sum(pagoda_worker:kv_blocks_used)", 0), 0)

    def test_dashboard_names_only_exported_metrics(self):
        self.run_workload()  # so histograms and counters have series
        self.grpc_request()
        exported = exported_names(self.cluster.metrics())
        for port in self.cluster.worker_metrics_ports():
            status, _, body = http("GET", f"http://127.0.0.1:{port}/metrics")
            self.assertEqual(status, 200)
            exported |= exported_names(pagoda_cluster.parse_metrics(body.decode()))
        exprs = dashboard_expressions()
        self.assertGreater(len(exprs), 20)
        wanted = set().union(*(metric_names(expr) for expr in exprs)) & exported
        deadline = time.time() + 30
        while True:  # until a scrape after the workload
            status, body = self.prometheus.api("label/__name__/values")
            self.assertEqual(status, 200)
            scraped = set(body["data"])
            if wanted <= scraped or time.time() > deadline:
                break
            time.sleep(0.25)
        for expr in exprs:
            names = metric_names(expr)
            self.assertTrue(names, f"no Pagoda metric in {expr}")
            self.assertLessEqual(names, exported, f"{expr}: not exported: {names - exported}")
            self.assertLessEqual(names, scraped, f"{expr}: not scraped: {names - scraped}")
            concrete = expr
            for variable, value in GRAFANA_VARIABLES.items():
                concrete = concrete.replace(variable, value)
            if concrete.startswith("label_values("):
                metric, label = re.match(r"label_values\((\S+),\s*(\w+)\)", concrete).groups()
                values = {labels.get(label) for labels, _ in self.prometheus.query(metric)}
                self.assertIn(MODEL, values, expr)
            else:
                self.prometheus.query(concrete)  # raises on a PromQL error

    def test_alert_rules_load_and_config_checks(self):
        check = subprocess.run(["promtool", "check", "config", self.prometheus.config_file],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        with open(os.path.join(pagoda_cluster.SOURCE_DIR, "deploy", "prometheus",
                               "alerts.yml")) as f:
            rules = yaml.safe_load(f)
        want = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
        self.assertGreaterEqual(len(want), 4)
        deadline = time.time() + 30
        while True:
            status, body = self.prometheus.api("rules")
            loaded = {rule["name"]: rule for group in body["data"]["groups"]
                      for rule in group["rules"]}
            evaluated = all(loaded.get(name, {}).get("health") == "ok" for name in want)
            if evaluated or time.time() > deadline:
                break
            time.sleep(0.25)
        self.assertEqual(set(loaded), want)
        for name in want:
            self.assertEqual(loaded[name]["health"], "ok", loaded[name])
        # A healthy cluster fires none of them.
        self.assertEqual([n for n in want if loaded[n]["state"] == "firing"], [])


if __name__ == "__main__":
    pagoda_cluster.main()
