"""TLS and mutual TLS on the router's public listeners (gRPC and the OpenAI HTTP API) of a real
`pagoda serve` cluster (1 x TP 1, stories260K). Certificates are made at test time with the
openssl CLI: a CA, a server certificate for 127.0.0.1 it signs, a client certificate it signs, and
a second CA with a client certificate of its own. A client with the CA's certificate is served;
one without a certificate, with the other CA's, or speaking plaintext is refused; the router
refuses a key that does not match its certificate at startup.

Run by ctest: .venv/bin/python tls_test.py --bin-dir B --source-dir S --shared-dir D
"""

import os
import shutil
import ssl
import subprocess
import tempfile
import unittest
import urllib.error

import grpc

import pagoda_cluster
from pagoda_cluster import PagodaCluster, http
from test_certificates import make_ca, make_signed

LIST_MODELS = "/pagoda.v1.Generation/ListModels"


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pagoda_tls_")
        make_ca("ca", cls.dir)
        make_ca("other_ca", cls.dir)
        make_signed("server", "ca", cls.dir, usages=("serverAuth",))
        make_signed("client", "ca", cls.dir, usages=("clientAuth",))
        make_signed("stranger", "other_ca", cls.dir, usages=("clientAuth",))
        cls.cluster = PagodaCluster(
            replicas=1, tp=1, ssl_context=cls.client_context("client"),
            extra_args=[f"--router-flag=--tls-cert={cls.path('server.pem')}",
                        f"--router-flag=--tls-key={cls.path('server.key')}",
                        f"--router-flag=--tls-client-ca={cls.path('ca.pem')}"])
        cls.grpc_target = f"127.0.0.1:{cls.cluster.state['router']['port']}"

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def client_context(cls, client=None):
        context = ssl.create_default_context(cafile=os.path.join(cls.dir, "ca.pem"))
        if client is not None:
            context.load_cert_chain(os.path.join(cls.dir, f"{client}.pem"),
                                    os.path.join(cls.dir, f"{client}.key"))
        return context

    def grpc_list_models(self, client=None, secure=True):
        if secure:
            def read(name):
                with open(self.path(name), "rb") as f:
                    return f.read()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read("ca.pem"),
                private_key=read(f"{client}.key") if client else None,
                certificate_chain=read(f"{client}.pem") if client else None)
            channel = grpc.secure_channel(self.grpc_target, credentials)
        else:
            channel = grpc.insecure_channel(self.grpc_target)
        with channel:
            call = channel.unary_unary(LIST_MODELS, request_serializer=lambda m: m,
                                       response_deserializer=lambda m: m)
            try:
                call(b"", timeout=10)  # an empty ListModelsRequest
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                return error.code()

    def test_https_with_a_client_certificate_is_served(self):
        status, _, body = http("POST", self.cluster.http_url + "/v1/completions",
                               {"prompt": "Once upon a time", "max_tokens": 4},
                               context=self.client_context("client"))
        self.assertEqual(status, 200, body)

    def test_https_without_or_with_a_foreign_certificate_is_refused(self):
        for client in (None, "stranger"):
            with self.assertRaises((urllib.error.URLError, ssl.SSLError, ConnectionError),
                                   msg=client):
                http("GET", self.cluster.http_url + "/v1/models",
                     context=self.client_context(client))

    def test_plaintext_http_is_refused(self):
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            http("GET", self.cluster.http_url.replace("https://", "http://") + "/v1/models",
                 timeout=10)

    def test_grpc_needs_tls_and_a_certificate_from_the_ca(self):
        self.assertEqual(self.grpc_list_models("client"), grpc.StatusCode.OK)
        self.assertEqual(self.grpc_list_models(None), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.grpc_list_models("stranger"), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.grpc_list_models(secure=False), grpc.StatusCode.UNAVAILABLE)

    def test_router_refuses_bad_tls_flags_at_startup(self):
        router = os.path.join(pagoda_cluster.BIN_DIR, "pagoda-router")
        model = pagoda_cluster.model_dir()
        cases = [
            (["--tls-cert", self.path("server.pem")], "--tls-key: needed"),
            (["--tls-client-ca", self.path("ca.pem")], "--tls-client-ca: needs --tls-cert"),
            (["--tls-cert", self.path("server.pem"), "--tls-key", self.path("server.pem")],
             "holds no PEM PRIVATE KEY"),
            (["--tls-cert", self.path("server.pem"), "--tls-key", self.path("client.key")],
             "is not the private key of"),
            (["--tls-cert", self.path("missing.pem"), "--tls-key", self.path("server.key")],
             "--tls-cert"),
        ]
        for flags, message in cases:
            result = subprocess.run(
                [router, "--model", model, "--replica", "127.0.0.1:1", "--grpc-port", "0",
                 "--http-port", "0", *flags], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(result.returncode, 0, flags)
            self.assertIn(message, result.stdout + result.stderr, flags)


if __name__ == "__main__":
    pagoda_cluster.main()
