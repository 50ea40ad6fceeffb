"""deploy/k8s/base: the Ingress is exactly what the routing table renders, the kustomize output
is valid Kubernetes (kubernetes-validate, strict: unknown fields fail), and the manifests agree
with the code: one Deployment and Service per service, probes on /health and /ready, requests
and limits, autoscaling for orders and users, only real settings, the Dockerfile's image."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from orderproc import __version__
from orderproc.common.settings import Settings
from orderproc.deploy.__main__ import main as deploy_main
from orderproc.deploy.k8s import ingress_manifests, render_ingress, service_name
from orderproc.gateway.routes import ROUTES, Service

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
INGRESS = BASE / "ingress.yaml"
# The oldest Kubernetes these manifests are meant for, and the newest the validator knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
NOT_SETTINGS = {"PGPASSWORD"}  # read by asyncpg when the database URL carries no password
Manifest = dict[str, Any]


def kustomize_build(base: Path = BASE) -> list[Manifest]:
    """What `kustomize build` makes of the base, for the features the base uses (a test below
    compares it with the real kustomize when `kubectl` is installed)."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "labels", "resources", "images"}
    objects: list[Manifest] = []
    for name in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((base / name).read_text()) if doc]
    for entry in kustomization.get("labels", []):
        assert set(entry) == {"pairs"}, "labels on selectors or templates are not rendered here"
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for obj in objects:
        for container in _containers(obj):
            name = container["image"].split(":")[0]
            if name in images:
                new = images[name]
                container["image"] = f"{new.get('newName', name)}:{new['newTag']}"
    return objects


def _containers(obj: Manifest) -> list[dict[str, Any]]:
    if obj["kind"] != "Deployment":
        return []
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def _by_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


@pytest.fixture(scope="module")
def built() -> list[Manifest]:
    return kustomize_build()


class TestGenerated:
    def test_the_committed_ingress_is_what_the_routing_table_renders(self) -> None:
        assert INGRESS.read_text(encoding="utf-8") == render_ingress(), (
            "regenerate: python -m orderproc.deploy render-k8s -o deploy/k8s/base/ingress.yaml"
        )

    def test_the_check_command_tells_a_stale_file(self, tmp_path: Path) -> None:
        assert deploy_main(["render-k8s", "-o", str(INGRESS), "--check"]) == 0
        stale = tmp_path / "ingress.yaml"
        stale.write_text(render_ingress().replace("orderproc-orders", "orderproc-users"))
        assert deploy_main(["render-k8s", "-o", str(stale), "--check"]) == 1
        assert deploy_main(["render-k8s", "-o", str(stale)]) == 0
        assert stale.read_text() == render_ingress()

    def test_the_yaml_reads_back_as_the_manifests(self) -> None:
        assert list(yaml.safe_load_all(render_ingress())) == ingress_manifests()

    def test_each_route_is_an_ingress_path_to_its_service(self) -> None:
        paths = {}
        for ingress in ingress_manifests():
            assert ingress["spec"]["ingressClassName"] == "nginx"
            streams = ingress["metadata"].get("annotations", {})
            for rule in ingress["spec"]["rules"]:
                for entry in rule["http"]["paths"]:
                    paths[entry["path"]] = (entry, streams)
        assert set(paths) == {route.path for route in ROUTES}
        for route in ROUTES:
            entry, annotations = paths[route.path]
            assert entry["pathType"] == ("Exact" if route.exact else "Prefix")
            backend = entry["backend"]["service"]
            assert backend == {"name": service_name(route.service), "port": {"name": "http"}}
            buffering = annotations.get("nginx.ingress.kubernetes.io/proxy-buffering")
            assert (buffering == "off") is route.stream, route.path
            if route.stream:
                timeout = annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]
                assert int(timeout) >= 600


class TestValid:
    @pytest.mark.parametrize("version", K8S_VERSIONS)
    def test_every_object_is_valid_kubernetes(self, built: list[Manifest], version: str) -> None:
        for obj in built:
            kubernetes_validate.validate(obj, version, strict=True)

    def test_a_broken_object_is_caught(self, built: list[Manifest]) -> None:
        broken = copy.deepcopy(_by_kind(built, "Deployment")["orderproc-orders"])
        broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pat"] = "/"
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)

    def test_the_real_kustomize_builds_the_same(self, built: list[Manifest]) -> None:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubectl is not installed; the Python rendering above stands in for it")
        out = subprocess.run(
            [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        real = [doc for doc in yaml.safe_load_all(out.stdout) if doc]

        def key(obj: Manifest) -> tuple[str, str]:
            return obj["kind"], obj["metadata"]["name"]

        assert sorted(real, key=key) == sorted(built, key=key)


class TestAgreesWithTheCode:
    def test_a_deployment_and_a_service_per_service(self, built: list[Manifest]) -> None:
        deployments, services = _by_kind(built, "Deployment"), _by_kind(built, "Service")
        names = {service_name(s) for s in Service}
        assert set(deployments) == names
        assert set(services) == names
        for service in Service:
            name = service_name(service)
            template = deployments[name]["spec"]["template"]
            (container,) = template["spec"]["containers"]
            assert container["args"] == ["serve", service.value]
            assert (
                deployments[name]["spec"]["selector"]["matchLabels"]
                == (template["metadata"]["labels"])
            )
            assert services[name]["spec"]["selector"] == template["metadata"]["labels"]
            (port,) = services[name]["spec"]["ports"]
            assert port["name"] == "http"
            assert port["targetPort"] in {p["name"] for p in container["ports"]}

    def test_probes_resources_secret_and_config(self, built: list[Manifest]) -> None:
        for name, deployment in _by_kind(built, "Deployment").items():
            pod = deployment["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, name
            env = {e["name"]: e for e in container["env"]}
            secret = env["ORDERPROC_JWT_SECRET"]["valueFrom"]["secretKeyRef"]
            assert secret == {"name": "orderproc-secrets", "key": "jwt-secret"}
            assert "value" not in env["PGPASSWORD"]
            assert container["envFrom"] == [{"configMapRef": {"name": "orderproc-config"}}]
            assert pod["securityContext"]["runAsNonRoot"] is True
        assert "orderproc-config" in _by_kind(built, "ConfigMap")

    def test_orders_and_users_autoscale(self, built: list[Manifest]) -> None:
        deployments = _by_kind(built, "Deployment")
        targets = {
            hpa["spec"]["scaleTargetRef"]["name"]
            for hpa in _by_kind(built, "HorizontalPodAutoscaler").values()
        }
        assert targets == {service_name(Service.ORDERS), service_name(Service.USERS)}
        for name, deployment in deployments.items():  # the autoscaler owns the replica count
            assert ("replicas" in deployment["spec"]) is (name not in targets), name

    def test_only_real_settings_and_they_parse(
        self, built: list[Manifest], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        known = {f"ORDERPROC_{field.upper()}" for field in Settings.model_fields}
        (config,) = _by_kind(built, "ConfigMap").values()
        names = set(config["data"])
        for deployment in _by_kind(built, "Deployment").values():
            for container in _containers(deployment):
                names |= {e["name"] for e in container["env"]}
                for entry in container["env"]:
                    if "value" in entry:
                        monkeypatch.setenv(entry["name"], entry["value"])
        assert names - known <= NOT_SETTINGS
        for key, value in config["data"].items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ORDERPROC_JWT_SECRET", "k" * 40)
        settings = Settings()
        assert settings.mode == "distributed"
        assert settings.resolved_database_url.startswith("postgresql://")
        assert settings.redis_url
        assert urlsplit(settings.resolved_database_url).password is None  # PGPASSWORD has it

    def test_the_image_is_the_dockerfiles_at_this_version(self, built: list[Manifest]) -> None:
        dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
        tagged = re.search(r"docker build .*-t (\S+) \.", dockerfile)
        assert tagged is not None
        port = re.search(r"ORDERPROC_PORT=(\d+)", dockerfile)
        uid = re.search(r"--uid (\d+)", dockerfile)
        assert port is not None
        assert uid is not None
        for deployment in _by_kind(built, "Deployment").values():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
            for container in _containers(deployment):
                assert container["image"] == f"{tagged.group(1)}:{__version__}"
                assert container["ports"][0]["containerPort"] == int(port.group(1))

    def test_every_ingress_backend_is_a_service_port(self, built: list[Manifest]) -> None:
        services = _by_kind(built, "Service")
        for ingress in _by_kind(built, "Ingress").values():
            for rule in ingress["spec"]["rules"]:
                for entry in rule["http"]["paths"]:
                    backend = entry["backend"]["service"]
                    ports = services[backend["name"]]["spec"]["ports"]
                    assert backend["port"]["name"] in {p["name"] for p in ports}


def test_the_overlay_in_the_docs_builds_valid_objects(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlay's patches need the real kustomize")
    docs = (ROOT / "docs" / "deploy.md").read_text()
    start = docs.index("# deploy/k8s/overlays/shop/kustomization.yaml")
    overlay = tmp_path / "deploy" / "k8s" / "overlays" / "shop"
    overlay.mkdir(parents=True)
    shutil.copytree(BASE, tmp_path / "deploy" / "k8s" / "base")
    (overlay / "kustomization.yaml").write_text(docs[start : docs.index("```", start)])
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    objects = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
        assert obj["metadata"]["namespace"] == "orderproc"
    for ingress in _by_kind(objects, "Ingress").values():
        assert ingress["spec"]["rules"][0]["host"] == "shop.example"
