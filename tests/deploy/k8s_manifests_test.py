#!/usr/bin/env python3
"""The rendered deploy/k8s overlays agree with the binaries, the images and each other:

- every flag a container passes is a flag of its binary (its --help), every $(VAR) it uses is
  in its env, and its container ports are the ports its flags bind;
- the router's --replica lists name StatefulSet pods through their headless Service, in rank
  (ordinal) order, one list per replica's StatefulSet, on the workers' gRPC port;
- Services select pods and name ports those pods declare; StatefulSets point at a headless
  Service that selects exactly their pods; the PDB, HPA, ServiceMonitors, volumes and
  ConfigMap references all resolve; the PrometheusRule is deploy/prometheus/alerts.yml and the
  dashboard ConfigMap is deploy/grafana/pagoda.json, byte for byte;
- images are ones deploy/docker builds and carry the binary the container runs; pods run as the
  images' user with a read-only root, no capabilities and /tmp on an emptyDir; GPU overlays ask
  for nvidia.com/gpu; multinode-tp4 spreads ranks over nodes and sets NCCL's socket transport;
- an overlay with internal TLS (components/internal-tls) mounts the Secret its Certificate
  writes in the router and every worker, at the paths their --*tls-* flags name, and the
  certificate holds the name and the usages those flags expect;
- an overlay with public TLS (components/public-tls) mounts its Secret in the router at the paths
  its --tls-cert/--tls-key name, probes the router over HTTPS, and the router's Service and
  ServiceMonitor speak HTTPS and check the certificate under a name it holds;
- then the binaries run with each overlay's arguments (ports, model path, worker addresses and
  the internal and public certificates (made here with openssl) moved to this machine): every
  probe and every scrape path answers 200 on the port the manifest names, over the scheme it
  names (HTTPS scrapes checked as Prometheus checks them), gRPC probes answer SERVING, the
  router readies its worker (over mutual TLS where the overlay has it), a router on TLS refuses
  plain HTTP, and the adapter's series is exported.

    k8s_manifests_test.py --bin-dir build/bin --source-dir . --shared-dir ../shared
"""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testing as dt  # noqa: E402
import pagoda_cluster  # noqa: E402

BINARIES = {"pagoda", "pagoda-router", "pagoda-worker"}
# The flags that bind each listener, and the container port name the manifests give it.
PORT_FLAGS = {"pagoda-router": {"grpc-port": "grpc", "http-port": "http"},
              "pagoda-worker": {"port": "grpc", "metrics-port": "metrics"}}
GRPC_LISTENERS = {("pagoda-router", "grpc-port"), ("pagoda-worker", "port")}
# Images deploy/docker builds.
DOCKERFILES = {"pagoda-cpu": "cpu.Dockerfile", "pagoda-router": "router.Dockerfile",
               "pagoda-worker-cuda": "worker-cuda.Dockerfile"}
# Init containers that run a shell, not a Pagoda binary (their flags are not checked).
SHELL_CONTAINERS = {"fetch-model"}
# Where components/internal-tls mounts the internal certificate (Secret pagoda-internal-tls).
INTERNAL_TLS_DIR = "/etc/pagoda/internal-tls"
# Where components/public-tls mounts the router's own certificate (Secret pagoda-public-tls).
PUBLIC_TLS_DIR = "/etc/pagoda/public-tls"
ADDRESS = re.compile(r"^(?P<pod>[a-z0-9-]+)-(?P<ordinal>\d+)\.(?P<service>[a-z0-9-]+):(?P<port>\d+)$")


def containers(template, init=True):
    spec = template["spec"]
    return spec["containers"] + (spec.get("initContainers", []) if init else [])


def flag_map(container):
    binary = container["command"][0]
    return dict(dt.parse_flags(container.get("args", []), dt.binary_flags(binary)))


def router_container(docs):
    return dt.find(docs, "Deployment", "pagoda-router")[0]["spec"]["template"]["spec"][
        "containers"][0]


def worker_sets(docs):
    return [d for d in dt.find(docs, "StatefulSet")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
            == "worker"]


def replica_flags(docs):
    """The router's --replica values, as lists of addresses."""
    args = router_container(docs)["args"]
    return [a.split("=", 1)[1].split(",") for a in args if a.startswith("--replica=")]


def image_name(image):
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def dockerfile_for(image):
    name = image_name(image).split("/")[-1]
    return dt.Dockerfile(os.path.join(dt.SOURCE_DIR, "deploy", "docker", DOCKERFILES[name]))


def final_binaries(dockerfile):
    found = set()
    for keyword, rest in dockerfile.final["instructions"]:
        if keyword == "COPY":
            found |= {os.path.basename(w) for w in rest.split() if w.startswith("/src/build/bin/")}
    return found


def job_of(service, monitor):
    label = monitor["spec"].get("jobLabel")
    return service["metadata"]["labels"][label] if label else service["metadata"]["name"]


class ManifestTest(unittest.TestCase):
    """Static agreement, for every overlay."""

    def overlays(self):
        for name, path in dt.overlay_dirs().items():
            yield name, dt.render(path)

    def test_flags_exist_and_env_references_resolve(self):
        for name, docs in self.overlays():
            for workload, template in dt.pod_templates(docs):
                for c in containers(template):
                    with self.subTest(overlay=name, container=f"{workload['metadata']['name']}/{c['name']}"):
                        binary = c["command"][0]
                        if c["name"] in SHELL_CONTAINERS:
                            self.assertEqual(binary, "/bin/sh")
                            continue
                        self.assertIn(binary, BINARIES)
                        flag_map(c)  # raises on a flag the binary lacks
                        env = {e["name"] for e in c.get("env", [])}
                        for arg in c.get("args", []):
                            for var in re.findall(r"\$\((\w+)\)", arg):
                                self.assertIn(var, env, f"$({var}) in {arg}")

    def test_container_ports_are_the_ports_the_flags_bind(self):
        for name, docs in self.overlays():
            for workload, template in dt.pod_templates(docs):
                for c in containers(template, init=False):
                    with self.subTest(overlay=name, container=c["name"]):
                        flags = flag_map(c)
                        declared = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                        expected = {port_name: int(flags[flag])
                                    for flag, port_name in PORT_FLAGS[c["command"][0]].items()}
                        self.assertEqual(declared, expected)

    def test_router_replicas_are_worker_pods_in_rank_order(self):
        for name, docs in self.overlays():
            with self.subTest(overlay=name):
                sets = {s["metadata"]["name"]: s for s in worker_sets(docs)}
                services = {s["metadata"]["name"]: s for s in dt.find(docs, "Service")}
                replicas = replica_flags(docs)
                self.assertTrue(replicas)
                used = {}
                for addresses in replicas:
                    parsed = [ADDRESS.match(a) for a in addresses]
                    self.assertTrue(all(parsed), f"not <pod>-<ordinal>.<service>:<port>: {addresses}")
                    statefulsets = {m["pod"] for m in parsed}
                    self.assertEqual(len(statefulsets), 1, f"one replica, one StatefulSet: {addresses}")
                    sts = sets[statefulsets.pop()]
                    worker = sts["spec"]["template"]["spec"]["containers"][0]
                    port = int(flag_map(worker)["port"])
                    for m in parsed:
                        self.assertEqual(m["service"], sts["spec"]["serviceName"])
                        self.assertIn(m["service"], services)
                        self.assertEqual(int(m["port"]), port)
                    ordinals = [int(m["ordinal"]) for m in parsed]
                    used.setdefault(sts["metadata"]["name"], []).append(ordinals)
                for sts_name, lists in used.items():
                    sts = sets[sts_name]
                    if len(lists) == 1:
                        # One replica per StatefulSet: ordinal = rank, every pod listed.
                        self.assertEqual(lists[0], list(range(sts["spec"]["replicas"])), sts_name)
                    else:
                        # A pool: each pod is a TP-1 replica, listed up to the HPA's maximum.
                        hpas = [h for h in dt.find(docs, "HorizontalPodAutoscaler")
                                if h["spec"]["scaleTargetRef"]["name"] == sts_name]
                        self.assertEqual(len(hpas), 1, f"{sts_name} is listed as a pool: needs an HPA")
                        self.assertEqual(lists, [[i] for i in range(hpas[0]["spec"]["maxReplicas"])])
                        self.assertNotIn("replicas", sts["spec"], "the HPA owns the pool's size")
                self.assertEqual(set(used), set(sets), "a worker StatefulSet no replica uses")

    def test_selectors_services_and_headless_names(self):
        for name, docs in self.overlays():
            templates = dt.pod_templates(docs)
            with self.subTest(overlay=name):
                for workload, template in templates:
                    self.assertTrue(dt.selects(workload["spec"]["selector"]["matchLabels"],
                                               template["metadata"]["labels"]))
                for service in dt.find(docs, "Service"):
                    selected = [t for _, t in templates
                                if dt.selects(service["spec"]["selector"], t["metadata"]["labels"])]
                    self.assertTrue(selected, f"Service {service['metadata']['name']} selects nothing")
                    for t in selected:
                        ports = {p["name"] for c in t["spec"]["containers"] for p in c.get("ports", [])}
                        for port in service["spec"]["ports"]:
                            self.assertIn(port["targetPort"], ports, service["metadata"]["name"])
                for sts in dt.find(docs, "StatefulSet"):
                    service = dt.find(docs, "Service", sts["spec"]["serviceName"])
                    self.assertEqual(len(service), 1, f"{sts['metadata']['name']}: no headless Service")
                    service = service[0]
                    self.assertEqual(service["spec"].get("clusterIP"), "None")
                    self.assertTrue(service["spec"].get("publishNotReadyAddresses"))
                    owners = [w["metadata"]["name"] for w, t in templates
                              if dt.selects(service["spec"]["selector"], t["metadata"]["labels"])]
                    self.assertEqual(owners, [sts["metadata"]["name"]],
                                     "a headless Service must select exactly its StatefulSet's pods")
                router_services = [s for s in dt.find(docs, "Service")
                                   if s["spec"].get("clusterIP") != "None"]
                self.assertEqual([s["metadata"]["name"] for s in router_services], ["pagoda-router"])
                self.assertEqual({p["name"] for p in router_services[0]["spec"]["ports"]},
                                 {"grpc", "http"})
                router = dt.find(docs, "Deployment", "pagoda-router")[0]
                self.assertEqual(router["spec"]["replicas"], 1, "one router drives the workers")

    def test_probes_name_declared_ports_of_the_right_listener(self):
        for name, docs in self.overlays():
            for workload, template in dt.pod_templates(docs):
                for c in containers(template, init=False):
                    flags = flag_map(c)
                    binary = c["command"][0]
                    by_name = {p["name"]: p["containerPort"] for p in c["ports"]}
                    flag_of_port = {int(flags[f]): f for f in PORT_FLAGS[binary]}
                    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                        probe = c.get(kind)
                        if probe is None:
                            self.assertNotEqual(kind, "readinessProbe", f"{c['name']} needs one")
                            self.assertNotEqual(kind, "livenessProbe", f"{c['name']} needs one")
                            continue
                        with self.subTest(overlay=name, container=c["name"], probe=kind):
                            handler = probe.get("httpGet") or probe.get("grpc")
                            self.assertIsNotNone(handler, "probes ask HTTP or gRPC endpoints")
                            port = handler["port"]
                            port = by_name[port] if isinstance(port, str) else port
                            self.assertIn(port, flag_of_port)
                            flag = flag_of_port[port]
                            if "grpc" in probe:
                                self.assertIn((binary, flag), GRPC_LISTENERS)
                            else:
                                self.assertNotIn((binary, flag), GRPC_LISTENERS)

    def test_monitoring_matches_services_alerts_and_dashboard(self):
        with open(os.path.join(dt.SOURCE_DIR, "deploy", "prometheus", "alerts.yml"), encoding="utf-8") as f:
            alerts = yaml.safe_load(f)
        with open(os.path.join(dt.SOURCE_DIR, "deploy", "grafana", "pagoda.json"), encoding="utf-8") as f:
            dashboard = f.read()
        for name, docs in self.overlays():
            with self.subTest(overlay=name):
                jobs = set()
                services = dt.find(docs, "Service")
                for monitor in dt.find(docs, "ServiceMonitor"):
                    selected = [s for s in services
                                if dt.selects(monitor["spec"]["selector"]["matchLabels"],
                                              s["metadata"]["labels"])]
                    self.assertTrue(selected, monitor["metadata"]["name"])
                    for s in selected:
                        ports = {p["name"] for p in s["spec"]["ports"]}
                        for endpoint in monitor["spec"]["endpoints"]:
                            self.assertIn(endpoint["port"], ports)
                            self.assertEqual(endpoint["path"], "/metrics")
                        jobs.add(job_of(s, monitor))
                self.assertEqual(jobs, {"pagoda-router", "pagoda-worker"},
                                 "the jobs deploy/prometheus/prometheus.yml names")
                rules = dt.find(docs, "PrometheusRule")
                self.assertEqual(len(rules), 1)
                self.assertEqual(rules[0]["spec"]["groups"], alerts["groups"],
                                 "the PrometheusRule must be deploy/prometheus/alerts.yml")
                for rule in alerts["groups"][0]["rules"]:
                    for job in re.findall(r'job="([^"]+)"', rule["expr"]):
                        self.assertIn(job, jobs, rule["alert"])
                maps = [m for m in dt.find(docs, "ConfigMap")
                        if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
                self.assertEqual(len(maps), 1)
                self.assertEqual(maps[0]["data"], {"pagoda.json": dashboard})

    def test_pdb_hpa_volumes_and_config_references_resolve(self):
        adapter_path = os.path.join(dt.k8s_dir(), "autoscaling", "prometheus-adapter-values.yaml")
        with open(adapter_path, encoding="utf-8") as f:
            adapter = yaml.safe_load(f)
        external = adapter["rules"]["external"]
        self.assertEqual(len(external), 1)
        self.assertIn("pagoda:num_requests_waiting", external[0]["seriesQuery"])
        for name, docs in self.overlays():
            with self.subTest(overlay=name):
                templates = dt.pod_templates(docs)
                workers = [t for _, t in templates
                           if t["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]
                pdbs = dt.find(docs, "PodDisruptionBudget")
                self.assertEqual(len(pdbs), 1)
                selected = [t for _, t in templates
                            if dt.selects(pdbs[0]["spec"]["selector"]["matchLabels"], t["metadata"]["labels"])]
                self.assertEqual(len(selected), len(workers))
                self.assertTrue(all(s in workers for s in selected))
                for hpa in dt.find(docs, "HorizontalPodAutoscaler"):
                    target = hpa["spec"]["scaleTargetRef"]
                    self.assertTrue(dt.find(docs, target["kind"], target["name"]))
                    for metric in hpa["spec"]["metrics"]:
                        self.assertEqual(metric["external"]["metric"]["name"],
                                         external[0]["name"]["as"])
                claims = {c["metadata"]["name"] for c in dt.find(docs, "PersistentVolumeClaim")}
                config_maps = {c["metadata"]["name"] for c in dt.find(docs, "ConfigMap")}
                for _, template in templates:
                    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
                    for v in volumes.values():
                        if "persistentVolumeClaim" in v:
                            self.assertIn(v["persistentVolumeClaim"]["claimName"], claims)
                    for c in containers(template):
                        for mount in c.get("volumeMounts", []):
                            self.assertIn(mount["name"], volumes)
                        for source in c.get("envFrom", []):
                            self.assertIn(source["configMapRef"]["name"], config_maps)
                    model = [a for a in flag_map(template["spec"]["containers"][0]).items()
                             if a[0] == "model"]
                    for _, path in model:
                        if not path.startswith("/models/"):
                            continue
                        self.assertIn("/models", {m["mountPath"] for m in
                                                  template["spec"]["containers"][0]["volumeMounts"]},
                                      f"--model={path} but no volume at /models")

    def test_internal_tls_mounts_the_certificate_its_flags_name(self):
        overlays = 0
        for name, docs in self.overlays():
            certificates = dt.find(docs, "Certificate", "pagoda-internal-tls")
            if not certificates:
                continue
            overlays += 1
            spec = certificates[0]["spec"]
            issuer = dt.find(docs, "Issuer", spec["issuerRef"]["name"])
            self.assertEqual(len(issuer), 1, f"{name}: the Certificate's Issuer")
            self.assertEqual(set(spec["usages"]) & {"server auth", "client auth"},
                             {"server auth", "client auth"})
            expected = {
                "pagoda-router": {"worker-tls-ca": "ca.crt", "worker-tls-cert": "tls.crt",
                                  "worker-tls-key": "tls.key"},
                "pagoda-worker": {"tls-cert": "tls.crt", "tls-key": "tls.key",
                                  "tls-ca": "ca.crt", "tls-client-ca": "ca.crt"}}
            server_name = {"pagoda-router": "worker-tls-server-name",
                           "pagoda-worker": "tls-server-name"}
            for workload, template in dt.pod_templates(docs):
                with self.subTest(overlay=name, workload=workload["metadata"]["name"]):
                    c = template["spec"]["containers"][0]
                    flags = flag_map(c)
                    binary = c["command"][0]
                    for flag, key in expected[binary].items():
                        self.assertEqual(flags.get(flag), f"{INTERNAL_TLS_DIR}/{key}", flag)
                    self.assertIn(flags[server_name[binary]], spec["dnsNames"])
                    mounts = [m for m in c["volumeMounts"] if m["mountPath"] == INTERNAL_TLS_DIR]
                    self.assertEqual(len(mounts), 1)
                    self.assertTrue(mounts[0]["readOnly"])
                    volume = [v for v in template["spec"]["volumes"]
                              if v["name"] == mounts[0]["name"]][0]
                    self.assertEqual(volume["secret"]["secretName"], spec["secretName"])
                    if binary == "pagoda-worker":
                        self.assertNotIn("grpc", c["livenessProbe"], "the kubelet's gRPC probe "
                                         "cannot speak TLS")
        self.assertGreaterEqual(overlays, 1, "no overlay uses components/internal-tls")

    def test_public_tls_mounts_the_certificate_its_flags_name(self):
        overlays = 0
        for name, docs in self.overlays():
            certificates = dt.find(docs, "Certificate", "pagoda-public-tls")
            if not certificates:
                continue
            overlays += 1
            with self.subTest(overlay=name):
                spec = certificates[0]["spec"]
                self.assertEqual(len(dt.find(docs, "Issuer", spec["issuerRef"]["name"])), 1,
                                 "the Certificate's Issuer")
                self.assertIn("server auth", spec["usages"])
                self.assertIn("pagoda-router", spec["dnsNames"], "the router Service's name")
                router = [t for w, t in dt.pod_templates(docs)
                          if w["metadata"]["name"] == "pagoda-router"][0]
                c = router["spec"]["containers"][0]
                flags = flag_map(c)
                self.assertEqual(flags.get("tls-cert"), f"{PUBLIC_TLS_DIR}/tls.crt")
                self.assertEqual(flags.get("tls-key"), f"{PUBLIC_TLS_DIR}/tls.key")
                mounts = [m for m in c["volumeMounts"] if m["mountPath"] == PUBLIC_TLS_DIR]
                self.assertEqual(len(mounts), 1)
                self.assertTrue(mounts[0]["readOnly"])
                volume = [v for v in router["spec"]["volumes"] if v["name"] == mounts[0]["name"]][0]
                self.assertEqual(volume["secret"]["secretName"], spec["secretName"])
                for kind in ("livenessProbe", "readinessProbe"):
                    self.assertEqual(c[kind]["httpGet"].get("scheme"), "HTTPS", kind)
                service = dt.find(docs, "Service", "pagoda-router")[0]
                http_port = [p for p in service["spec"]["ports"] if p["name"] == "http"][0]
                self.assertEqual(http_port.get("appProtocol"), "https")
                for monitor in dt.find(docs, "ServiceMonitor", "pagoda-router"):
                    endpoint = monitor["spec"]["endpoints"][0]
                    self.assertEqual(endpoint.get("scheme"), "https")
                    tls = endpoint["tlsConfig"]
                    self.assertEqual(tls["ca"]["secret"]["name"], spec["secretName"])
                    self.assertIn(tls["serverName"], spec["dnsNames"])
        self.assertGreaterEqual(overlays, 1, "no overlay uses components/public-tls")

    def test_images_security_and_hardware(self):
        for name, docs in self.overlays():
            with self.subTest(overlay=name):
                tags = set()
                for workload, template in dt.pod_templates(docs):
                    pod = template["spec"]
                    security = pod["securityContext"]
                    self.assertTrue(security["runAsNonRoot"])
                    self.assertEqual(security["seccompProfile"]["type"], "RuntimeDefault")
                    self.assertFalse(pod.get("automountServiceAccountToken", True))
                    for c in containers(template):
                        dockerfile = dockerfile_for(c["image"])
                        tags.add(c["image"].rsplit(":", 1)[1])
                        users = [r for k, r in dockerfile.final["instructions"] if k == "USER"]
                        self.assertEqual(users, [f"{security['runAsUser']}:{security['runAsGroup']}"])
                        binary = c["command"][0]
                        if binary in BINARIES:
                            self.assertIn(binary, final_binaries(dockerfile), c["image"])
                        else:
                            runs = " ".join(r for k, r in dockerfile.final["instructions"] if k == "RUN")
                            self.assertIn("curl", runs, f"{c['name']} runs curl in {c['image']}")
                        ctx = c["securityContext"]
                        self.assertTrue(ctx["readOnlyRootFilesystem"])
                        self.assertFalse(ctx["allowPrivilegeEscalation"])
                        self.assertEqual(ctx["capabilities"]["drop"], ["ALL"])
                        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
                        self.assertEqual(len(tmp), 1, f"{c['name']}: /tmp on an emptyDir")
                        volume = [v for v in pod["volumes"] if v["name"] == tmp[0]["name"]][0]
                        self.assertIn("emptyDir", volume)
                    worker = pod["containers"][0]
                    if worker["command"][0] == "pagoda-worker":
                        gpu = image_name(worker["image"]).endswith("pagoda-worker-cuda")
                        limits = worker.get("resources", {}).get("limits", {})
                        self.assertEqual(limits.get("nvidia.com/gpu") == 1, gpu, name)
                self.assertEqual(len(tags), 1, f"one release of every image: {tags}")
        docs = dt.render(dt.overlay_dirs()["multinode-tp4"])
        (sts,) = worker_sets(docs)
        self.assertEqual(sts["spec"]["replicas"], 4)
        (term,) = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertTrue(dt.selects(term["labelSelector"]["matchLabels"],
                                   sts["spec"]["template"]["metadata"]["labels"]))
        env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertEqual(env["NCCL_SOCKET_IFNAME"], "eth0")
        self.assertEqual(env["NCCL_IB_DISABLE"], "1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url):
    """GET `url`; an https one as the kubelet probes it (the certificate is not checked)."""
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        return 0, str(e)


def grpc_health(port):
    """grpc.health.v1.Health/Check for the server as a whole ("", what a kubelet gRPC probe asks):
    the status byte, 1 = SERVING."""
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        response = check(b"", timeout=5)
    return response[1] if len(response) == 2 and response[0] == 0x08 else None


def make_internal_certificate(out):
    """The Secret components/internal-tls mounts, as cert-manager writes it (ca.crt, tls.crt,
    tls.key), made with openssl: a CA and a certificate for pagoda-worker it signs."""
    os.makedirs(out)

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=ca", "-keyout", "ca.key",
            "-out", "ca.crt")
    openssl("req", *ec, "-subj", "/CN=pagoda-worker", "-keyout", "tls.key", "-out", "tls.csr")
    with open(os.path.join(out, "tls.ext"), "w") as f:
        f.write("subjectAltName=DNS:pagoda-worker\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "tls.ext", "-out", "tls.crt")


def make_public_certificate(out):
    """The Secret components/public-tls mounts (ca.crt, tls.crt, tls.key) as cert-manager's
    self-signed Issuer writes it: one self-signed certificate for pagoda-router, also valid for
    127.0.0.1 here; ca.crt is the certificate itself."""
    os.makedirs(out)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=pagoda-router", "-addext",
                    "subjectAltName=DNS:pagoda-router,IP:127.0.0.1", "-addext",
                    "extendedKeyUsage=serverAuth", "-keyout", "tls.key", "-out", "tls.crt"],
                   cwd=out, check=True, capture_output=True)
    with open(os.path.join(out, "tls.crt"), "rb") as src, \
            open(os.path.join(out, "ca.crt"), "wb") as dst:
        dst.write(src.read())


def scrape_https(port, path, ca_file, server_name):
    """GET `path` over TLS as Prometheus does with a ServiceMonitor's tlsConfig: the certificate
    checked against `ca_file` under `server_name`. Returns (status, body)."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.sendall(f"GET {path} HTTP/1.0\r\nHost: {server_name}\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


class ServedEndpointsTest(unittest.TestCase):
    """Each overlay's router and worker arguments, run here."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pagoda_k8s_test_")
        cls.model = os.path.join(cls.tmp, "stories260K")
        pagoda_cluster.convert_stories(cls.model)
        cls.tls_dir = os.path.join(cls.tmp, "internal-tls")
        make_internal_certificate(cls.tls_dir)
        cls.public_tls_dir = os.path.join(cls.tmp, "public-tls")
        make_public_certificate(cls.public_tls_dir)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.tmp])

    def local_args(self, container, ports, extra=None):
        """The container's args for this machine: listeners on loopback and free ports (same
        flags), the env's $(VAR)s expanded as the kubelet would (POD_IP: loopback), the model
        here, KV memory small, worker addresses replaced by `extra`."""
        env = {"POD_IP": "127.0.0.1"}
        out = []
        for arg in container["args"]:
            name, _, value = arg[2:].partition("=")
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
            value = value.replace(INTERNAL_TLS_DIR, self.tls_dir)
            value = value.replace(PUBLIC_TLS_DIR, self.public_tls_dir)
            if name in ports:
                value = str(ports[name])
            elif name == "host":
                value = "127.0.0.1"
            elif name == "model":
                value = self.model
            elif name == "kv-cache-memory-gib":
                value = "0.01"
            elif name == "replica":
                continue
            out.append(f"--{name}={value}")
        return out + (extra or [])

    def start(self, args, log_name):
        log = open(os.path.join(self.tmp, log_name), "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.addCleanup(self.stop, proc)
        return proc

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log(self, log_name):
        with open(os.path.join(self.tmp, log_name), encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def check_probes(self, container, ports, log_name):
        by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
        flags = flag_map(container)
        local_port = {int(flags[f]): ports[f] for f in PORT_FLAGS[container["command"][0]]}
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            handler = probe.get("httpGet") or probe.get("grpc")
            port = handler["port"]
            port = local_port[by_name[port] if isinstance(port, str) else port]
            if "grpc" in probe:
                self.assertEqual(grpc_health(port), 1, f"{kind}: gRPC health not SERVING")
            else:
                scheme = handler.get("scheme", "HTTP").lower()
                status, body = http_get(f"{scheme}://127.0.0.1:{port}{handler['path']}")
                self.assertEqual(status, 200, f"{kind} GET {handler['path']}: {body}\n"
                                 f"{self.log(log_name)}")

    def test_every_probe_and_scrape_path_is_served(self):
        for name, path in dt.overlay_dirs().items():
            with self.subTest(overlay=name):
                docs = dt.render(path)
                worker = worker_sets(docs)[0]["spec"]["template"]["spec"]["containers"][0]
                worker_ports = {f: free_port() for f in PORT_FLAGS["pagoda-worker"]}
                worker_proc = self.start([os.path.join(dt.BIN_DIR, "pagoda-worker")]
                                         + self.local_args(worker, worker_ports), f"{name}-worker.log")
                router = router_container(docs)
                router_ports = {f: free_port() for f in PORT_FLAGS["pagoda-router"]}
                router_proc = self.start(
                    [os.path.join(dt.BIN_DIR, "pagoda-router")]
                    + self.local_args(router, router_ports,
                                      [f"--replica=127.0.0.1:{worker_ports['port']}"]),
                    f"{name}-router.log")
                public_tls = "tls-cert" in flag_map(router)
                http = f"{'https' if public_tls else 'http'}://127.0.0.1:{router_ports['http-port']}"
                deadline = time.monotonic() + 60
                while http_get(f"{http}/ready")[0] != 200:
                    self.assertIsNone(router_proc.poll(), self.log(f"{name}-router.log"))
                    self.assertLess(time.monotonic(), deadline, self.log(f"{name}-router.log"))
                    time.sleep(0.2)
                self.check_probes(router, router_ports, f"{name}-router.log")
                self.check_probes(worker, worker_ports, f"{name}-worker.log")
                status, body = http_get(f"http://127.0.0.1:{worker_ports['metrics-port']}/health")
                self.assertEqual(json.loads(body)["state"], "READY")
                # The ServiceMonitors' scrape paths, and the series the HPA's adapter reads.
                if public_tls:
                    monitor = dt.find(docs, "ServiceMonitor", "pagoda-router")[0]
                    status, body = scrape_https(
                        router_ports["http-port"], "/metrics",
                        os.path.join(self.public_tls_dir, "ca.crt"),
                        monitor["spec"]["endpoints"][0]["tlsConfig"]["serverName"])
                    plain = http_get(f"http://127.0.0.1:{router_ports['http-port']}/ready")
                    self.assertNotEqual(plain[0], 200, "plain HTTP served on a TLS listener")
                else:
                    status, body = http_get(f"{http}/metrics")
                self.assertEqual(status, 200)
                self.assertIn("pagoda:num_requests_waiting{", body)
                status, body = http_get(f"http://127.0.0.1:{worker_ports['metrics-port']}/metrics")
                self.assertEqual(status, 200)
                self.assertIn("pagoda_worker:", body)
                self.stop(router_proc)
                self.stop(worker_proc)


if __name__ == "__main__":
    argv = dt.configure(sys.argv)
    unittest.main(argv=argv, verbosity=2)
