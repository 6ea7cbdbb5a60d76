"""The deployment files, checked without a daemon or a cluster: compose.yaml by Debian's
`docker-compose config`, the Kubernetes manifests by `kubernetes-validate` against the
Kubernetes schemas (strict: an unknown field fails), and the shape both must have."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
SECRET_SETTINGS = ("DATABASE_URL", "ENCRYPTION_KEY", "BOOTSTRAP_API_KEY")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def compose_config() -> dict[str, Any]:
    """compose.yaml as `docker-compose config` resolves it (anchors merged, values checked)."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    result = subprocess.run(
        [tool, "--project-directory", str(ROOT), "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,  # guards against a hang only
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_is_valid_and_has_the_production_shape() -> None:
    services = compose_config()["services"]
    assert set(services) == {"postgres", "migrate", "api-1", "api-2", "push-worker", "pull-runner"}
    assert DIGEST.search(services["postgres"]["image"])
    ours = {name: service for name, service in services.items() if name != "postgres"}
    for name, service in ours.items():
        environment = service["environment"]
        for setting in SECRET_SETTINGS:
            assert f"CASEBRIDGE_{setting}" not in environment, name  # files only
            assert environment[f"CASEBRIDGE_{setting}_FILE"].startswith("/run/secrets/"), name
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            ), name
            assert service["healthcheck"], name
    assert ours["migrate"]["command"] == ["migrate"]

    def enabled(setting: str) -> set[str]:
        return {n for n, s in ours.items() if s["environment"][setting] == "true"}

    assert enabled("CASEBRIDGE_PULL_RUNNER_ENABLED") == {"pull-runner"}
    assert enabled("CASEBRIDGE_PUSH_DISPATCHER_ENABLED") == {"push-worker"}
    for api in ("api-1", "api-2"):
        assert "/readyz" in " ".join(ours[api]["healthcheck"]["test"])
    assert ours["pull-runner"]["command"] == ["pull-runner"]
    assert ours["push-worker"]["command"] == ["push-worker"]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    for name, document in manifests():
        kubernetes_validate.validate(document, version, strict=True)  # raises on any error
        assert document["kind"] != "Secret" or "REPLACE-ME" in str(document["stringData"]), name


def test_kubernetes_manifests_have_the_production_shape() -> None:
    documents = {(doc["kind"], doc["metadata"]["name"]): doc for _name, doc in manifests()}
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    workloads = {
        name: doc for (kind, name), doc in documents.items() if kind in ("Deployment", "Job")
    }
    assert set(workloads) == {
        "casebridge-api",
        "casebridge-push-worker",
        "casebridge-pull-runner",
        "casebridge-migrate",
    }
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        [container] = pod["containers"]
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert not {e["name"].removeprefix("CASEBRIDGE_") for e in container.get("env", [])} & set(
            SECRET_SETTINGS
        ), name  # secrets come as files (casebridge-config names them), never as values
    assert workloads["casebridge-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate"
    ]
    for name, command in (
        ("casebridge-pull-runner", "pull-runner"),
        ("casebridge-push-worker", "push-worker"),
    ):
        assert workloads[name]["spec"]["template"]["spec"]["containers"][0]["args"] == [command]
    container = workloads["casebridge-api"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = documents["Service", "casebridge-api"]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    config = documents["ConfigMap", "casebridge-config"]["data"]
    for setting in SECRET_SETTINGS:
        assert f"CASEBRIDGE_{setting}" not in config
        assert config[f"CASEBRIDGE_{setting}_FILE"].startswith("/run/secrets/casebridge/")
