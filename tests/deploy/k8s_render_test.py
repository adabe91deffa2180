#!/usr/bin/env python3
"""deploy/k8s renders and validates: `kubectl kustomize` builds every overlay (and the bases),
and every rendered object validates, offline, against the Kubernetes OpenAPI schemas that
kubernetes-validate bundles (strict: unknown fields fail) for the oldest and newest Kubernetes
releases the manifests claim, 1.28 and 1.32. The prometheus-operator resources (ServiceMonitor,
PrometheusRule) are checked against the minimal schemas in
tests/data/k8s/prometheus_operator_schemas.yaml, and their PromQL with promtool where the
Prometheus package is installed; the cert-manager ones (Issuer, Certificate) against
tests/data/k8s/cert_manager_schemas.yaml. No kind is skipped: an object of any other kind fails.

    k8s_render_test.py --bin-dir build/bin --source-dir . --shared-dir ../shared
"""

import copy
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_testing as dt  # noqa: E402

KUBERNETES_VERSIONS = ["1.28.0", "1.32.0"]
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
                ("monitoring.coreos.com/v1", "PrometheusRule"),
                ("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
# Kinds deliberately not validated, by name, with the reason. Empty: every kind is checked.
SKIPPED_KINDS = {}
EXPECTED_OVERLAYS = {"cpu-demo", "cpu-demo-mtls", "gpu-tp1", "gpu-tp2", "multinode-tp4",
                     "gpu-tp1-autoscaling"}


def custom_schemas():
    schemas = {}
    for name in ("prometheus_operator_schemas.yaml", "cert_manager_schemas.yaml"):
        with open(os.path.join(dt.SOURCE_DIR, "tests", "data", "k8s", name), encoding="utf-8") as f:
            schemas.update(yaml.safe_load(f))
    return schemas


def validate_builtin(doc, version):
    """kubernetes-validate's strict validation; raises with the object's name on failure."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                             f"{e.message} at {'.'.join(str(p) for p in e.path)}") from None


def validate_custom(doc, schemas):
    jsonschema.Draft7Validator(schemas[doc["kind"]]).validate(doc)
    if doc["kind"] == "PrometheusRule":
        names = [g["name"] for g in doc["spec"]["groups"]]
        if len(names) != len(set(names)):  # x-kubernetes-list-map-keys: name
            raise AssertionError(f"PrometheusRule groups repeat a name: {names}")


class RenderTest(unittest.TestCase):

    def test_all_overlays_are_there(self):
        self.assertEqual(set(dt.overlay_dirs()), EXPECTED_OVERLAYS)

    def test_every_kustomization_that_is_not_a_component_renders(self):
        for root, _, files in os.walk(os.path.join(dt.SOURCE_DIR, "deploy")):
            if "kustomization.yaml" not in files:
                continue
            with open(os.path.join(root, "kustomization.yaml"), encoding="utf-8") as f:
                if yaml.safe_load(f).get("kind") == "Component":
                    continue
            with self.subTest(kustomization=os.path.relpath(root, dt.SOURCE_DIR)):
                self.assertTrue(dt.render(root))

    def test_overlays_validate_against_the_kubernetes_schemas(self):
        schemas = custom_schemas()
        for name, path in dt.overlay_dirs().items():
            docs = dt.render(path)
            kinds = set()
            for doc in docs:
                kind = (doc["apiVersion"], doc["kind"])
                kinds.add(doc["kind"])
                with self.subTest(overlay=name, object=f"{doc['kind']}/{doc['metadata']['name']}"):
                    self.assertNotIn(doc["kind"], SKIPPED_KINDS)
                    if kind in CUSTOM_KINDS:
                        validate_custom(doc, schemas)
                        continue
                    for version in KUBERNETES_VERSIONS:
                        validate_builtin(doc, version)
            # Every overlay is a whole deployment.
            for kind in ("Namespace", "Deployment", "StatefulSet", "Service",
                         "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "ConfigMap"):
                self.assertIn(kind, kinds, f"{name} renders no {kind}")

    def test_validation_rejects_broken_objects(self):
        """The validators do fail: a misspelt field, a wrong type, a bad duration."""
        docs = dt.render(dt.overlay_dirs()["cpu-demo"])
        deployment = copy.deepcopy(dt.find(docs, "Deployment")[0])
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
        with self.assertRaises(AssertionError):
            validate_builtin(deployment, KUBERNETES_VERSIONS[0])
        service = copy.deepcopy(dt.find(docs, "Service", "pagoda-router")[0])
        service["spec"]["ports"][0]["port"] = "fifty"
        with self.assertRaises(AssertionError):
            validate_builtin(service, KUBERNETES_VERSIONS[-1])
        schemas = custom_schemas()
        monitor = copy.deepcopy(dt.find(docs, "ServiceMonitor")[0])
        monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
        with self.assertRaises(jsonschema.ValidationError):
            validate_custom(monitor, schemas)
        monitor = copy.deepcopy(dt.find(docs, "ServiceMonitor")[0])
        monitor["spec"]["endpoint"] = monitor["spec"].pop("endpoints")
        with self.assertRaises(jsonschema.ValidationError):
            validate_custom(monitor, schemas)
        certificate = copy.deepcopy(
            dt.find(dt.render(dt.overlay_dirs()["cpu-demo-mtls"]), "Certificate")[0])
        certificate["spec"]["usages"] = ["client-auth"]
        with self.assertRaises(jsonschema.ValidationError):
            validate_custom(certificate, schemas)
        rule = copy.deepcopy(dt.find(docs, "PrometheusRule")[0])
        rule["spec"]["groups"][0]["rules"][0]["for"] = "1 minute"
        with self.assertRaises(jsonschema.ValidationError):
            validate_custom(rule, schemas)

    def test_prometheus_rule_expressions_parse(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool (Debian package prometheus) is not installed")
        docs = dt.render(dt.overlay_dirs()["cpu-demo"])
        rule = dt.find(docs, "PrometheusRule")[0]
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f)
            f.flush()
            result = subprocess.run([promtool, "check", "rules", f.name], capture_output=True,
                                    text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


if __name__ == "__main__":
    argv = dt.configure(sys.argv)
    unittest.main(argv=argv, verbosity=2)
