"""The deploy manifests parse and validate: compose against the Compose Specification, Kubernetes against its schemas.

Offline: the Kubernetes JSON schemas ship in the ``kubernetes-validate`` wheel, the compose-spec schema in the
``check-jsonschema`` wheel. Where the Docker Compose plugin exists, ``docker compose config`` parses the file too.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes minor still in upstream support when these manifests were written, and the newest shipped.
KUBERNETES_VERSIONS = ("1.32", "1.37")
# Not Kubernetes API objects: kustomize's own file, and the Strimzi operator's custom resources.
NOT_IN_KUBERNETES_SCHEMAS = {"Kustomization", "KafkaTopic"}
CONSUMER_GROUPS = {"policy-engine": "policy-engine.spend", "reporting": "reporting.sink"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all_k8s() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) for doc in _documents(path)]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _all_k8s() if doc["kind"] == kind}


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _docker_compose() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


class TestCompose:
    def test_the_compose_file_follows_the_compose_specification(self) -> None:
        result = _check_compose_schema(COMPOSE)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_a_misspelt_service_key_fails_the_same_check(self, tmp_path: Path) -> None:
        broken = tmp_path / "compose.yaml"
        broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped", "    restrat: unless-stopped", 1))
        assert broken.read_text() != COMPOSE.read_text()
        result = _check_compose_schema(broken)
        assert result.returncode != 0
        assert "restrat" in result.stdout + result.stderr

    def test_every_dependency_names_a_service_of_the_file(self) -> None:
        services = yaml.safe_load(COMPOSE.read_text())["services"]
        for name, service in services.items():
            depends = service.get("depends_on", {})
            assert set(depends) <= set(services), f"{name} depends on {set(depends) - set(services)}"

    @pytest.mark.skipif(not _docker_compose(), reason="no Docker Compose plugin here; the schema check above ran")
    def test_docker_compose_config_parses_the_file(self) -> None:
        env = {**os.environ, **{k: "x" for k in _required_variables()}}
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def _required_variables() -> set[str]:
    example = ROOT / "deploy" / ".env.example"
    return {line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line and line[0] != "#"}


class TestKubernetes:
    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(self, version: str) -> None:
        checked = 0
        for filename, doc in _all_k8s():
            if doc["kind"] in NOT_IN_KUBERNETES_SCHEMAS:
                continue
            try:
                validate(doc, version, strict=True)
            except ValidationError as exc:
                pytest.fail(f"{filename} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
            checked += 1
        assert checked >= 20

    def test_an_unknown_field_is_rejected(self) -> None:
        gateway = _by_kind("Deployment")["ingest-gateway"]
        broken = {**gateway, "spec": {**gateway["spec"], "replica": 3}}
        with pytest.raises(ValidationError):
            validate(broken, KUBERNETES_VERSIONS[-1], strict=True)

    def test_only_custom_resources_lack_a_schema(self) -> None:
        for _, doc in _all_k8s():
            if doc["kind"] in NOT_IN_KUBERNETES_SCHEMAS:
                with pytest.raises(SchemaNotFoundError):
                    validate(doc, KUBERNETES_VERSIONS[-1], strict=True)

    def test_kustomization_lists_every_manifest_but_the_examples(self) -> None:
        listed = set(_documents(K8S / "kustomization.yaml")[0]["resources"])
        present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present - {"secret.example.yaml", "strimzi-topics.yaml"}

    def test_every_deployment_has_a_disruption_budget_selecting_its_pods(self) -> None:
        budgets = _by_kind("PodDisruptionBudget")
        for name, deployment in _by_kind("Deployment").items():
            assert name in budgets, f"no PodDisruptionBudget for {name}"
            selector = budgets[name]["spec"]["selector"]["matchLabels"]
            assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    def test_the_gateway_scales_on_cpu_and_the_consumers_on_their_groups_lag(self) -> None:
        autoscalers = _by_kind("HorizontalPodAutoscaler")
        deployments = _by_kind("Deployment")
        gateway = autoscalers["ingest-gateway"]["spec"]
        assert [m["resource"]["name"] for m in gateway["metrics"] if m["type"] == "Resource"] == ["cpu"]
        for service, group in CONSUMER_GROUPS.items():
            spec = autoscalers[service]["spec"]
            assert spec["scaleTargetRef"]["name"] == service
            (metric,) = spec["metrics"]
            assert metric["type"] == "External"
            assert metric["external"]["metric"]["selector"]["matchLabels"]["consumergroup"] == group
            assert spec["maxReplicas"] <= 6, "more members than the topic's 6 partitions would sit idle"
        for name in autoscalers:
            assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns the replica count"
