"""Certificates made with openssl for the TLS tests: a CA, and certificates it signs.

  make_ca("ca", d)                                          # d/ca.pem, d/ca.key
  make_signed("server", "ca", d, usages=("serverAuth",))    # for 127.0.0.1 and localhost
  make_signed("client", "ca", d, usages=("clientAuth",))
"""

import os
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(name, cwd):
    """A self-signed P-256 CA valid for 2 days: cwd/name.pem and cwd/name.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", cwd=cwd)


def make_signed(name, ca, cwd, usages):
    """A P-256 certificate signed by CA `ca` with the extended key usages `usages`
    ("serverAuth", "clientAuth"); one that serves is valid for 127.0.0.1 and localhost."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=cwd)
    ext = os.path.join(cwd, f"{name}.ext")
    with open(ext, "w", encoding="utf-8") as f:
        if "serverAuth" in usages:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        f.write(f"extendedKeyUsage={','.join(usages)}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.pem", cwd=cwd)
