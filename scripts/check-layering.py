#!/usr/bin/env python3
"""Fails when an #include runs against the layering that docs/architecture.md draws.

Each top-level source folder may include only the folders listed for it (and itself):

    tools/    -> everything
    router/   -> engine, structured, proto, common
    worker/   -> kernels, structured, proto, common
    engine/   -> common            (no gRPC, no proto, no kernels, no worker)
    structured/ -> common          (constrained decoding: grammars, masks)
    kernels/  -> common
    proto/    -> common
    common/   -> nothing above it (third-party libraries only)

Third-party headers (anything whose first path component is not one of Pagoda's folders) are
allowed everywhere except that engine/, kernels/, structured/ and common/ may not include gRPC or generated
protobuf headers. tests/ and benchmarks/ may use everything. Usage: scripts/check-layering.py
[repository root]; prints each violation as file:line and exits 1 if there is any.
"""

import pathlib
import re
import sys

ALLOWED = {
    "tools": {"tools", "router", "worker", "engine", "kernels", "structured", "proto", "common"},
    "router": {"router", "engine", "structured", "proto", "common"},
    "worker": {"worker", "kernels", "structured", "proto", "common"},
    "engine": {"engine", "common"},
    "structured": {"structured", "common"},
    "kernels": {"kernels", "common"},
    "proto": {"proto", "common"},
    "common": {"common"},
}
PROJECT_FOLDERS = set(ALLOWED) | {"tests", "benchmarks"}
# Layers that must stay free of the network stack, whatever folder the header would come from.
NO_NETWORK = {"engine", "kernels", "common", "structured"}
NETWORK_PREFIXES = ("grpc", "grpcpp/", "google/protobuf/", "pagoda/v1/", "pagoda/internal/")
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^">]+)[">]')
SOURCE_SUFFIXES = {".h", ".cc", ".cu", ".cuh"}


def violations(root: pathlib.Path):
    for layer, allowed in sorted(ALLOWED.items()):
        for path in sorted((root / layer).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                header = match.group(1)
                top = header.split("/", 1)[0]
                where = f"{path.relative_to(root)}:{number}"
                if top in PROJECT_FOLDERS and top not in allowed:
                    yield f"{where}: {layer}/ may not include {header} ({top}/ is not below it)"
                elif layer in NO_NETWORK and header.startswith(NETWORK_PREFIXES):
                    yield f"{where}: {layer}/ may not include {header} (no network code here)"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1])
    found = list(violations(root.resolve()))
    for v in found:
        print(v)
    if found:
        print(f"check-layering: {len(found)} include(s) against the layering")
        return 1
    print("check-layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
