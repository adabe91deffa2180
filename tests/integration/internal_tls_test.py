"""Mutual TLS on the internal channels of a real `pagoda serve` cluster (1 x TP 2, stories260K):
the router dials its workers, and rank 1 dials rank 0's bootstrap store, with certificates from
one CA (--internal-tls-*). Certificates are made at test time with the openssl CLI (as
tls_test.py does): a CA and a certificate for 127.0.0.1 with server and client usages it signs,
and a second CA with a certificate of its own.

- a greedy request through the cluster equals the golden (so the TP 2 rendezvous and every step
  went over mutual TLS);
- a worker's port refuses plaintext, TLS without a client certificate, and a certificate from the
  other CA (UNAVAILABLE), and serves the right one;
- a router given the other CA as --worker-tls-ca, a client certificate from the other CA, or no
  TLS never initializes the workers, and its /ready and log say which side's TLS refused the
  other, naming the worker;
- pagoda-worker, pagoda-router and pagoda serve refuse incomplete or wrong TLS flags at startup
  with an error naming the flag.

Run by ctest: .venv/bin/python internal_tls_test.py --bin-dir B --source-dir S --shared-dir D
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

import pagoda_cluster
from pagoda_cluster import PagodaCluster, http
from test_certificates import make_ca, make_signed

WORKER_HEALTH = "/pagoda.internal.Worker/Health"


def make_peer(name, ca, cwd):
    """A certificate for 127.0.0.1 that serves and dials (what pagoda serve's processes share)."""
    make_signed(name, ca, cwd, usages=("serverAuth", "clientAuth"))


class InternalTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pagoda_internal_tls_")
        make_ca("ca", cls.dir)
        make_ca("other_ca", cls.dir)
        make_peer("peer", "ca", cls.dir)
        make_peer("stranger", "other_ca", cls.dir)
        cls.cluster = PagodaCluster(
            replicas=1, tp=2,
            extra_args=["--internal-tls-ca", cls.path("ca.pem"),
                        "--internal-tls-cert", cls.path("peer.pem"),
                        "--internal-tls-key", cls.path("peer.key")])
        cls.worker_ports = [w["port"] for w in cls.cluster.state["workers"]]

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def worker_health(self, port, ca=None, client=None):
        """A direct Worker/Health call: plaintext without `ca`, else TLS trusting `ca` and
        presenting `client`'s certificate when given. The status code."""
        target = f"127.0.0.1:{port}"
        if ca is None:
            channel = grpc.insecure_channel(target)
        else:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.read(f"{ca}.pem"),
                private_key=self.read(f"{client}.key") if client else None,
                certificate_chain=self.read(f"{client}.pem") if client else None)
            channel = grpc.secure_channel(target, credentials)
        with channel:
            call = channel.unary_unary(WORKER_HEALTH, request_serializer=lambda m: m,
                                       response_deserializer=lambda m: m)
            try:
                call(b"", timeout=10)  # an empty HealthRequest
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                return error.code()

    def test_greedy_request_over_mutual_tls_equals_the_golden(self):
        golden = next(g for g in pagoda_cluster.load_goldens() if g["prompt"])
        status, _, body = http("POST", self.cluster.http_url + "/v1/completions",
                               {"prompt": golden["prompt"], "temperature": 0,
                                "max_tokens": len(golden["greedy_ids"])})
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["choices"][0]["text"], golden["greedy_text"])

    def test_worker_ports_need_a_certificate_from_the_ca(self):
        for port in self.worker_ports:
            with self.subTest(port=port):
                self.assertEqual(self.worker_health(port, "ca", "peer"), grpc.StatusCode.OK)
                self.assertEqual(self.worker_health(port), grpc.StatusCode.UNAVAILABLE)
                self.assertEqual(self.worker_health(port, "ca"), grpc.StatusCode.UNAVAILABLE)
                self.assertEqual(self.worker_health(port, "ca", "stranger"),
                                 grpc.StatusCode.UNAVAILABLE)
                # The worker's certificate is not the other CA's: a client that trusts only
                # that one refuses the worker.
                self.assertEqual(self.worker_health(port, "other_ca", "stranger"),
                                 grpc.StatusCode.UNAVAILABLE)

    def start_router(self, tls_flags, log):
        """pagoda-router over the cluster's workers with `tls_flags`; (process, HTTP URL)."""
        port_file = os.path.join(self.dir, f"{log}.http.port")
        replica = ",".join(f"127.0.0.1:{p}" for p in self.worker_ports)
        with open(os.path.join(self.dir, f"{log}.log"), "wb") as out:
            router = subprocess.Popen(
                [os.path.join(pagoda_cluster.BIN_DIR, "pagoda-router"),
                 "--model", pagoda_cluster.model_dir(), "--replica", replica,
                 "--grpc-port", "0", "--http-port", "0", "--http-port-file", port_file,
                 "--health-interval-ms", "100", *tls_flags],
                stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (router.kill(), router.wait()))
        deadline = time.time() + 60
        while time.time() < deadline:
            self.assertIsNone(router.poll(), self.router_log(log))
            try:
                with open(port_file) as f:
                    return router, f"http://127.0.0.1:{int(f.read())}"
            except (OSError, ValueError):
                time.sleep(0.05)
        self.fail("the router did not listen:\n" + self.router_log(log))

    def router_log(self, log):
        with open(os.path.join(self.dir, f"{log}.log"), errors="replace") as f:
            return f.read()

    def wait_for_replica_error(self, url, log):
        """The replica's last_error on /ready once it has one (the replica must stay down)."""
        deadline = time.time() + 30
        while time.time() < deadline:
            status, _, body = http("GET", url + "/ready", timeout=10)
            replica = json.loads(body)["replicas"][0]
            self.assertNotEqual(replica["state"], "ready", body)
            if replica["last_error"]:
                return replica["last_error"]
            time.sleep(0.1)
        self.fail("no error on /ready:\n" + self.router_log(log))

    def test_router_with_the_wrong_ca_or_no_certificate_names_tls(self):
        cases = {
            "wrong_ca": ["--worker-tls-ca", self.path("other_ca.pem"),
                         "--worker-tls-cert", self.path("peer.pem"),
                         "--worker-tls-key", self.path("peer.key")],
            "foreign_cert": ["--worker-tls-ca", self.path("ca.pem"),
                             "--worker-tls-cert", self.path("stranger.pem"),
                             "--worker-tls-key", self.path("stranger.key")],
            "plaintext": [],
        }
        # The router's handshake refuses the worker's certificate; the worker's refuses the
        # router's certificate or plaintext by closing the connection, which gRPC reports as
        # "Socket closed" (or, for the certificate, as the TLS alert the worker sent, when it
        # arrives before the close: either message names TLS).
        expected = {"wrong_ca": "TLS handshake failed \\(the workers' certificates must chain to "
                                "--worker-tls-ca",
                    "foreign_cert": "the worker closed the connection during setup \\(its TLS "
                                    "handshake refused the router's client certificate|"
                                    "TLS handshake failed \\(",
                    "plaintext": "a worker that serves TLS does so to a plaintext router: give "
                                 "the router --worker-tls-ca"}
        for name, flags in cases.items():
            with self.subTest(router=name):
                router, url = self.start_router(flags, f"router_{name}")
                error = self.wait_for_replica_error(url, f"router_{name}")
                address = f"127.0.0.1:{self.worker_ports[0]}"
                self.assertIn(f"worker rank 0 ({address}) does not answer: ", error)
                self.assertRegex(error, expected[name])
                self.assertRegex(self.router_log(f"router_{name}"), expected[name])
                router.kill()
                router.wait()
        # The cluster's own router still serves.
        self.assertEqual(self.cluster.ready_replicas(), 1)

    def test_binaries_refuse_incomplete_or_wrong_tls_flags(self):
        bin_dir = pagoda_cluster.BIN_DIR
        worker = [os.path.join(bin_dir, "pagoda-worker"), "--port", "0"]
        router = [os.path.join(bin_dir, "pagoda-router"), "--model", pagoda_cluster.model_dir(),
                  "--replica", "127.0.0.1:1", "--grpc-port", "0", "--http-port", "0"]
        serve = [os.path.join(bin_dir, "pagoda"), "serve", "--model", pagoda_cluster.model_dir(),
                 "--replicas", "1", "--tp", "1", "--grpc-port", "0", "--http-port", "0"]
        cert, key, ca = self.path("peer.pem"), self.path("peer.key"), self.path("ca.pem")
        cases = [
            (worker + ["--tls-cert", cert], "--tls-key: needed with --tls-cert"),
            (worker + ["--tls-cert", cert, "--tls-key", key], "--tls-ca: needed with --tls-cert"),
            (worker + ["--tls-ca", ca], "--tls-ca: needs --tls-cert"),
            (worker + ["--tls-cert", cert, "--tls-key", self.path("stranger.key"), "--tls-ca", ca],
             "--tls-key: "),
            (worker + ["--tls-cert", cert, "--tls-key", key, "--tls-ca", self.path("no.pem")],
             "--tls-ca: "),
            (router + ["--worker-tls-cert", cert], "--worker-tls-key: needed"),
            (router + ["--worker-tls-cert", cert, "--worker-tls-key", key],
             "--worker-tls-ca: needed with --worker-tls-cert"),
            (router + ["--worker-tls-ca", self.path("missing.pem")], "--worker-tls-ca: "),
            (router + ["--worker-tls-ca", ca, "--worker-tls-cert", cert, "--worker-tls-key",
                       self.path("stranger.key")], "is not the private key of"),
            (router + ["--worker-tls-ca", key], "holds no PEM CERTIFICATE"),
            (serve + ["--internal-tls-ca", ca], "--internal-tls-ca: needs --internal-tls-cert"),
            (serve + ["--internal-tls-cert", cert, "--internal-tls-key", key],
             "--internal-tls-ca: needed"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv[0:1] + argv[-4:]):
                result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
                self.assertIn(message, result.stdout + result.stderr)


if __name__ == "__main__":
    pagoda_cluster.main()
