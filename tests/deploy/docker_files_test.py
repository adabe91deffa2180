#!/usr/bin/env python3
"""Static checks of deploy/docker/*.Dockerfile and .dockerignore (no Docker daemon needed), plus
the images' entry points run for real from this build:

- every COPY source exists in the build context and .dockerignore does not drop it; every
  COPY --from names an earlier stage;
- the build stages install and build as CI does (scripts/install-deps.sh, scripts/build.sh, which
  scripts/test.sh runs too) with CMake options that exist; the CUDA image builds on NVIDIA's
  devel image with -DPAGODA_CUDA=ON and runs on the runtime image of the same CUDA version;
- the final stages run as the unprivileged uid 10001, install curl for their HEALTHCHECK, copy
  binaries the build makes, and their ENTRYPOINT/CMD flags are flags of those binaries;
- EXPOSE matches the port flags; each HEALTHCHECK asks a port and path the process serves:
  the binaries are started with the image's arguments (ports moved to free ones) and the
  HEALTHCHECK's URL answers 200 once the cluster is ready;
- scripts/runtime-packages.sh resolves every library of the binaries to an installed package;
- the stories260K checksums the CPU image verifies are those of ../shared's files.

    docker_files_test.py --bin-dir build/bin --source-dir . --shared-dir ../shared
"""

import fnmatch
import hashlib
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testing as dt  # noqa: E402
import pagoda_cluster  # noqa: E402

IMAGES = {  # Dockerfile -> (binaries in the final stage, binary its ENTRYPOINT runs)
    "router.Dockerfile": ({"pagoda-router"}, "pagoda-router"),
    "worker-cuda.Dockerfile": ({"pagoda-worker"}, "pagoda-worker"),
    "cpu.Dockerfile": ({"pagoda", "pagoda-router", "pagoda-worker"}, "pagoda"),
}
UID = "10001"


def docker_dir():
    return os.path.join(dt.SOURCE_DIR, "deploy", "docker")


def dockerfile(name):
    return dt.Dockerfile(os.path.join(docker_dir(), name))


def ignore_patterns():
    with open(os.path.join(dt.SOURCE_DIR, ".dockerignore"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def ignored(path, patterns):
    """Docker's .dockerignore semantics for the patterns used here (no '!' exceptions): a path
    is excluded when it or one of its parent directories matches."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pattern in patterns:
            pattern = pattern.strip("/")
            if pattern.startswith("**/"):
                if fnmatch.fnmatchcase(parts[i - 1], pattern[3:]):
                    return True
            elif fnmatch.fnmatchcase(prefix, pattern):
                return True
    return False


def copy_sources(rest):
    """(--from value or None, [sources], destination) of a COPY instruction."""
    words = shlex.split(rest)
    source_from = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            source_from = flag[len("--from="):]
    return source_from, words[:-1], words[-1]


def entry_args(image):
    """The final stage's ENTRYPOINT + CMD as one argument list."""
    entrypoint, cmd = [], []
    for keyword, rest in image.final["instructions"]:
        if keyword == "ENTRYPOINT":
            entrypoint = dt.exec_form(rest)
        elif keyword == "CMD":
            cmd = dt.exec_form(rest)
    return entrypoint, cmd


def flag_value(args, name):
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class DockerfileTest(unittest.TestCase):

    def test_every_image_has_a_dockerfile_and_nothing_else_is_there(self):
        names = sorted(n for n in os.listdir(docker_dir()) if n.endswith("Dockerfile"))
        self.assertEqual(names, sorted(IMAGES))

    def test_copy_sources_exist_and_are_not_ignored(self):
        patterns = ignore_patterns()
        for must in (".git", ".venv", "build", "models"):
            self.assertTrue(ignored(must, patterns), f".dockerignore should drop {must}")
        for name in IMAGES:
            image = dockerfile(name)
            stages_before = []
            for stage in image.stages:
                for keyword, rest in stage["instructions"]:
                    self.assertNotEqual(keyword, "ADD", f"{name}: use COPY (ADD fetches URLs)")
                    if keyword != "COPY":
                        continue
                    source_from, sources, _ = copy_sources(rest)
                    if source_from is not None:
                        self.assertIn(source_from, stages_before,
                                      f"{name}: COPY --from={source_from} names no earlier stage")
                        continue
                    for source in sources:
                        if source == ".":
                            continue
                        path = os.path.join(dt.SOURCE_DIR, source)
                        self.assertTrue(os.path.exists(path), f"{name}: COPY {source}: missing")
                        self.assertFalse(ignored(source, patterns),
                                         f"{name}: COPY {source} is dropped by .dockerignore")
                stages_before.append(stage["name"])

    def test_build_stages_install_and_build_as_ci_does(self):
        with open(os.path.join(dt.SOURCE_DIR, "scripts", "test.sh"), encoding="utf-8") as f:
            test_sh = f.read()
        self.assertIn("scripts/install-deps.sh", test_sh)
        self.assertIn("scripts/build.sh", test_sh)
        with open(os.path.join(dt.SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
            options = set(re.findall(r"option\((\w+)", f.read()))
        for name in IMAGES:
            image = dockerfile(name)
            build = image.stage("build")
            runs = " ".join(rest for keyword, rest in build["instructions"] if keyword == "RUN")
            self.assertIn("scripts/install-deps.sh", runs, name)
            self.assertIn("scripts/build.sh", runs, name)
            for option in re.findall(r"-D(\w+)=", runs):
                self.assertTrue(option in options or option.startswith("CMAKE_"),
                                f"{name}: -D{option} is not an option of CMakeLists.txt")
            self.assertIn("-DPAGODA_BUILD_TESTS=OFF", runs, name)
            cuda = "-DPAGODA_CUDA=ON" in runs
            self.assertEqual(cuda, name == "worker-cuda.Dockerfile", name)
            if cuda:
                builder = image.expand(build["base"])
                final = image.expand(image.final["base"])
                self.assertRegex(builder, r"^nvidia/cuda:[\d.]+-devel-")
                self.assertRegex(final, r"^nvidia/cuda:[\d.]+-runtime-")
                self.assertEqual(builder.replace("-devel-", "-runtime-"), final,
                                 "builder and runtime must be the same CUDA and OS release")
            else:
                self.assertEqual(build["base"], "debian:bookworm", "CI's Debian 12")
                self.assertEqual(image.final["base"], "debian:bookworm-slim")

    def test_final_stages_are_unprivileged_and_carry_their_binaries(self):
        built = set(os.listdir(dt.BIN_DIR))
        for name, (binaries, entry_binary) in IMAGES.items():
            image = dockerfile(name)
            instructions = image.final["instructions"]
            users = [rest for keyword, rest in instructions if keyword == "USER"]
            self.assertEqual(users, [f"{UID}:{UID}"], f"{name}: numeric non-root USER")
            runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
            self.assertIn(f"--uid {UID}", runs, name)
            self.assertIn("runtime-packages.txt", runs, name)
            self.assertRegex(runs, r"apt-get install .*\bcurl\b", f"{name}: curl for HEALTHCHECK")
            copied = set()
            for keyword, rest in instructions:
                if keyword == "COPY":
                    source_from, sources, _ = copy_sources(rest)
                    for source in sources:
                        if source.startswith("/src/build/bin/"):
                            copied.add(os.path.basename(source))
            self.assertEqual(copied, binaries, name)
            self.assertLessEqual(copied, built, f"{name} copies binaries the build does not make")
            entrypoint, cmd = entry_args(image)
            self.assertEqual(entrypoint[0], entry_binary, name)

    def test_entry_flags_exist_and_ports_match_expose_and_healthcheck(self):
        for name, (_, binary) in IMAGES.items():
            image = dockerfile(name)
            entrypoint, cmd = entry_args(image)
            args = entrypoint[1:] + cmd
            subcommand = None
            if args and not args[0].startswith("-"):
                subcommand = args.pop(0)
            if args == ["--help"]:
                args = []
            dt.parse_flags(args, dt.binary_flags(binary, subcommand))
            exposed = set()
            health = None
            for keyword, rest in image.final["instructions"]:
                if keyword == "EXPOSE":
                    exposed |= set(rest.split())
                if keyword == "HEALTHCHECK":
                    health = rest
            self.assertIsNotNone(health, f"{name}: no HEALTHCHECK")
            m = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*)", health)
            self.assertIsNotNone(m, f"{name}: HEALTHCHECK asks no local HTTP URL")
            port, path = m.group(1), m.group(2)
            self.assertEqual(path, "/health", name)
            if binary == "pagoda-worker":
                ports = {"port": flag_value(args, "port"),
                         "metrics-port": flag_value(args, "metrics-port")}
                self.assertEqual(port, ports["metrics-port"], f"{name}: /health is on --metrics-port")
            else:
                ports = {"grpc-port": flag_value(args, "grpc-port"),
                         "http-port": flag_value(args, "http-port")}
                self.assertEqual(port, ports["http-port"], f"{name}: /health is on --http-port")
            self.assertEqual(exposed, set(ports.values()), f"{name}: EXPOSE vs the port flags")

    def test_runtime_packages_cover_every_library(self):
        binaries = [os.path.join(dt.BIN_DIR, b) for b in ("pagoda", "pagoda-router", "pagoda-worker")]
        result = subprocess.run([os.path.join(dt.SOURCE_DIR, "scripts", "runtime-packages.sh")]
                                + binaries, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        packages = result.stdout.split()
        for expected in ("libc6", "libstdc++6", "libgrpc++1.51", "libopenblas0-openmp",
                         "libgloo0", "libprometheus-cpp-core1.0"):
            self.assertIn(expected, packages)
        for package in packages:
            status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                    capture_output=True, text=True)
            self.assertIn("install ok installed", status.stdout, package)
        # And the exclusion the CUDA image uses.
        result = subprocess.run([os.path.join(dt.SOURCE_DIR, "scripts", "runtime-packages.sh"),
                                 "--exclude", "^libc6$"] + binaries, capture_output=True, text=True)
        self.assertNotIn("libc6", result.stdout.split())

    def test_stories_checksums_are_the_shared_files(self):
        with open(os.path.join(docker_dir(), "cpu.Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        pairs = dict((file, digest) for digest, file in
                     re.findall(r"([0-9a-f]{64}) (\S+\.bin)", text))
        self.assertEqual(set(pairs), {"stories260K.bin", "tok512.bin"})
        source = os.path.join(dt.SHARED_DIR, "models", "stories260K")
        for file, digest in pairs.items():
            with open(os.path.join(source, file), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, file)


class EntryPointTest(unittest.TestCase):
    """The images' entry points and HEALTHCHECKs against the real binaries."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pagoda_docker_test_")
        cls.model = os.path.join(cls.tmp, "stories260K")
        pagoda_cluster.convert_stories(cls.model)
        cls.procs = []

    @classmethod
    def tearDownClass(cls):
        for proc in cls.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        subprocess.run(["rm", "-rf", cls.tmp])

    def start(self, args, log_name):
        log = open(os.path.join(self.tmp, log_name), "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, log_name):
        with open(os.path.join(self.tmp, log_name), encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def wait_status(self, url, status, timeout_s, log_name):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = http_status(url)
            if last == status:
                return
            time.sleep(0.2)
        self.fail(f"{url} answered {last}, not {status}\n{self.log(log_name)}")

    @staticmethod
    def with_ports(args, ports):
        """args with --NAME=VALUE replaced for NAME in ports, and --host on loopback."""
        out = []
        for arg in args:
            name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
            if name in ports:
                out.append(f"--{name}={ports[name]}")
            elif name == "host":
                out.append("--host=127.0.0.1")
            elif name == "model":
                out.append(f"--model={EntryPointTest.model}")
            else:
                out.append(arg)
        return out

    def test_worker_and_router_images_answer_their_healthchecks(self):
        entrypoint, cmd = entry_args(dockerfile("worker-cuda.Dockerfile"))
        worker_ports = {"port": free_port(), "metrics-port": free_port()}
        self.start([os.path.join(dt.BIN_DIR, entrypoint[0])]
                   + self.with_ports(entrypoint[1:] + cmd, worker_ports), "worker.log")
        self.wait_status(f"http://127.0.0.1:{worker_ports['metrics-port']}/health", 200, 30,
                         "worker.log")
        entrypoint, _ = entry_args(dockerfile("router.Dockerfile"))
        router_ports = {"grpc-port": free_port(), "http-port": free_port()}
        self.start([os.path.join(dt.BIN_DIR, entrypoint[0])]
                   + self.with_ports(entrypoint[1:], router_ports)
                   + [f"--model={self.model}", f"--replica=127.0.0.1:{worker_ports['port']}",
                      "--num-gpu-blocks-override=64"], "router.log")
        self.wait_status(f"http://127.0.0.1:{router_ports['http-port']}/health", 200, 60,
                         "router.log")

    def test_cpu_image_serves_a_cluster_that_passes_its_healthcheck(self):
        entrypoint, cmd = entry_args(dockerfile("cpu.Dockerfile"))
        self.assertEqual(cmd[0], "serve")
        self.assertIn("--model=/opt/pagoda/models/stories260K", cmd)
        ports = {"grpc-port": free_port(), "http-port": free_port()}
        proc = self.start([os.path.join(dt.BIN_DIR, entrypoint[0])]
                          + self.with_ports(cmd, ports), "serve.log")
        self.wait_status(f"http://127.0.0.1:{ports['http-port']}/health", 200, 90, "serve.log")
        proc.terminate()
        self.assertEqual(proc.wait(timeout=30), 0, self.log("serve.log"))


if __name__ == "__main__":
    argv = dt.configure(sys.argv)
    unittest.main(argv=argv, verbosity=2)
