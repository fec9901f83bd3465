"""The Kustomize base and overlays under ``deploy/k8s``, checked without a cluster.

Each kustomization is rendered with ``kustomize build`` (or ``kubectl kustomize``),
every document is validated in strict mode against the Kubernetes API schemas that
``kubernetes-validate`` ships, and the properties that ``deploy/k8s/README.md``
promises platform teams are asserted on the rendered output, which is what a
cluster would receive.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from itinera.common.settings import CommonSettings

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production")
# The oldest minor the manifests support and the newest the validator ships.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
NAMESPACES = {"overlays/dev": "itinera-dev", "overlays/production": "itinera"}
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})
CLUSTER_SCOPED_KINDS = frozenset({"Namespace"})
# Strimzi names a cluster's bootstrap Service <cluster>-kafka-bootstrap.
STRIMZI_BOOTSTRAP = re.compile(r"[a-z0-9-]+-kafka-bootstrap\.[a-z0-9-]+(\.svc(\.cluster\.local)?)?:\d+")

Manifest = dict[str, Any]


def _render_command(directory: Path) -> list[str]:
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(directory)]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(directory)]
    pytest.fail(
        "Cannot render deploy/k8s: neither `kustomize` nor `kubectl` is on PATH. "
        "Install kustomize 5+ or kubectl 1.27+ (which embeds kustomize 5).",
        pytrace=False,
    )


@functools.cache
def render(kustomization: str) -> tuple[Manifest, ...]:
    """Every document that ``kustomization`` renders to, in output order."""
    command = _render_command(K8S_DIR / kustomization)
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed with status {result.returncode}:\n{result.stderr}",
            pytrace=False,
        )
    documents = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert all(isinstance(document, dict) for document in documents)
    return tuple(documents)


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] == kind]


def workloads(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def all_containers(workload: Manifest) -> Iterator[Manifest]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def argv(container: Manifest) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def option(container: Manifest, name: str) -> str:
    arguments = argv(container)
    assert name in arguments, f"container {container['name']} has no {name}: {arguments}"
    return arguments[arguments.index(name) + 1]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def where(manifest: Manifest) -> str:
    return f"{manifest['kind']} {manifest['metadata']['name']}"


def config_data(manifests: tuple[Manifest, ...]) -> dict[str, str]:
    (config_map,) = of_kind(manifests, "ConfigMap")
    data: dict[str, str] = config_map["data"]
    return data


def secret_data(secret: Manifest) -> dict[str, str]:
    data: dict[str, str] = secret.get("stringData", {})
    return data


@pytest.fixture(params=KUSTOMIZATIONS)
def kustomization(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(kustomization: str) -> tuple[Manifest, ...]:
    return render(kustomization)


class TestRendering:
    def test_renders_every_kind_a_service_needs(self, manifests: tuple[Manifest, ...]) -> None:
        kinds = {manifest["kind"] for manifest in manifests}
        expected = {
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        }
        assert expected <= kinds

    @pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
    def test_every_manifest_matches_the_kubernetes_schema(
        self, manifests: tuple[Manifest, ...], version: str
    ) -> None:
        failures = []
        for manifest in manifests:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except (
                kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError,
            ) as e:
                failures.append(f"{where(manifest)}: {e}")
        assert not failures, "\n".join(failures)

    def test_strict_validation_refuses_unknown_fields(self) -> None:
        """Guards the test above: a misspelt field must not pass silently."""
        deployment = of_kind(render("base"), "Deployment")[0]
        container = {**pod_spec(deployment)["containers"][0], "livenesProbe": {}}
        broken = {
            **deployment,
            "spec": {
                **deployment["spec"],
                "template": {
                    **deployment["spec"]["template"],
                    "spec": {**pod_spec(deployment), "containers": [container]},
                },
            },
        }
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)

    def test_every_resource_carries_the_common_labels(
        self, kustomization: str, manifests: tuple[Manifest, ...]
    ) -> None:
        for manifest in manifests:
            labels = manifest["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/part-of") == "itinera", where(manifest)
        for workload in workloads(manifests):
            assert pod_labels(workload).get("app.kubernetes.io/part-of") == "itinera"

    def test_overlays_put_everything_in_their_namespace(self) -> None:
        for kustomization, namespace in NAMESPACES.items():
            manifests = render(kustomization)
            assert [ns["metadata"]["name"] for ns in of_kind(manifests, "Namespace")] == [namespace]
            for manifest in manifests:
                if manifest["kind"] not in CLUSTER_SCOPED_KINDS:
                    assert manifest["metadata"].get("namespace") == namespace, where(manifest)


class TestContainers:
    def test_every_container_has_probes_and_limits(self, manifests: tuple[Manifest, ...]) -> None:
        for workload in workloads(manifests):
            for container in all_containers(workload):
                resources = container.get("resources", {})
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                        f"{where(workload)} container {container['name']} lacks {bound}"
                    )
        for deployment in of_kind(manifests, "Deployment"):
            for container in pod_spec(deployment)["containers"]:
                port_names = {port["name"] for port in container["ports"]}
                port_numbers = {port["containerPort"] for port in container["ports"]}
                # The command's --port is the port every probe and the scraper use.
                assert int(option(container, "--port")) in port_numbers
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    assert probe in container, f"{where(deployment)} has no {probe}"
                    http_get = container[probe]["httpGet"]
                    assert http_get["path"] == path, f"{where(deployment)} {probe}"
                    assert http_get["port"] in port_names | port_numbers

    def test_every_container_runs_as_non_root_on_a_read_only_root(
        self, manifests: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(manifests):
            pod = pod_spec(workload)
            pod_context = pod.get("securityContext", {})
            assert pod_context.get("runAsNonRoot") is True, where(workload)
            assert pod_context.get("runAsUser", 0) != 0, where(workload)
            assert pod.get("automountServiceAccountToken") is False, where(workload)
            tmp_volumes = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
            for container in all_containers(workload):
                context = container.get("securityContext", {})
                name = f"{where(workload)} container {container['name']}"
                assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, name
                assert context.get("readOnlyRootFilesystem") is True, name
                assert context.get("allowPrivilegeEscalation") is False, name
                assert "ALL" in context.get("capabilities", {}).get("drop", []), name
                seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
                assert seccomp.get("type") == "RuntimeDefault", name
                # A read-only root still needs a writable /tmp for Python and libraries.
                assert any(
                    mount["mountPath"] == "/tmp" and mount["name"] in tmp_volumes
                    for mount in container.get("volumeMounts", [])
                ), f"{name} has no emptyDir at /tmp"

    def test_every_pod_reads_the_config_map_and_the_secret(self, manifests: tuple[Manifest, ...]) -> None:
        config_maps = {config_map["metadata"]["name"] for config_map in of_kind(manifests, "ConfigMap")}
        for workload in workloads(manifests):
            for container in all_containers(workload):
                sources = container.get("envFrom", [])
                referenced = {
                    source["configMapRef"]["name"] for source in sources if "configMapRef" in source
                }
                secrets = {source["secretRef"]["name"] for source in sources if "secretRef" in source}
                assert referenced, where(workload)
                assert referenced <= config_maps, where(workload)
                assert secrets == {"itinera-secrets"}, where(workload)

    def test_every_setting_is_one_the_code_reads(self, manifests: tuple[Manifest, ...]) -> None:
        fields = set(CommonSettings.model_fields)
        names = [*config_data(manifests)]
        for secret in of_kind(manifests, "Secret"):
            names.extend(secret_data(secret))
        for name in names:
            assert name.startswith("ITINERA_"), name
            assert name.removeprefix("ITINERA_").lower() in fields, f"unknown setting {name}"

    def test_consumers_let_kafka_hold_an_idle_fetch(self, manifests: tuple[Manifest, ...]) -> None:
        # Kafka answers as soon as a record is there: a long wait costs no latency and
        # spares the brokers twenty empty fetches a second per idle consumer.
        assert int(config_data(manifests)["ITINERA_CONSUMER_FETCH_MAX_WAIT_MS"]) >= 500

    def test_every_pod_is_scraped_by_prometheus(self, manifests: tuple[Manifest, ...]) -> None:
        for deployment in of_kind(manifests, "Deployment"):
            annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
            (container,) = pod_spec(deployment)["containers"]
            assert annotations.get("prometheus.io/scrape") == "true", where(deployment)
            assert annotations.get("prometheus.io/path") == "/metrics", where(deployment)
            assert annotations.get("prometheus.io/port") == option(container, "--port")


class TestScaling:
    def test_every_deployment_has_a_disruption_budget_and_an_autoscaler(
        self, manifests: tuple[Manifest, ...]
    ) -> None:
        budgets = of_kind(manifests, "PodDisruptionBudget")
        autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
        for deployment in of_kind(manifests, "Deployment"):
            namespace = deployment["metadata"].get("namespace")
            labels = pod_labels(deployment)
            assert any(
                budget["metadata"].get("namespace") == namespace
                and selects(budget["spec"]["selector"]["matchLabels"], labels)
                for budget in budgets
            ), f"no PodDisruptionBudget covers {where(deployment)}"
            targeting = [
                autoscaler
                for autoscaler in autoscalers
                if autoscaler["metadata"].get("namespace") == namespace
                and autoscaler["spec"]["scaleTargetRef"]
                == {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment["metadata"]["name"],
                }
            ]
            assert len(targeting) == 1, f"{where(deployment)} needs exactly one autoscaler"
            (autoscaler,) = targeting
            assert autoscaler["apiVersion"] == "autoscaling/v2"
            assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
            # A fixed replica count would fight the autoscaler on every apply.
            assert "replicas" not in deployment["spec"], where(deployment)

    def test_disruption_budgets_never_block_a_drain(self, manifests: tuple[Manifest, ...]) -> None:
        for budget in of_kind(manifests, "PodDisruptionBudget"):
            assert "minAvailable" not in budget["spec"], where(budget)
            assert budget["spec"]["maxUnavailable"] >= 1, where(budget)

    def test_api_and_worker_are_separate_deployments_of_each_service(
        self, manifests: tuple[Manifest, ...]
    ) -> None:
        roles: dict[str, dict[str, str]] = {}
        for deployment in of_kind(manifests, "Deployment"):
            labels = pod_labels(deployment)
            (container,) = pod_spec(deployment)["containers"]
            role = option(container, "--role")
            assert role == labels["app.kubernetes.io/component"], where(deployment)
            assert argv(container)[:2] == ["itinera", "serve"]
            by_role = roles.setdefault(labels["app.kubernetes.io/name"], {})
            by_role[role] = deployment["metadata"]["name"]
        assert roles, "no Deployment rendered"
        for name, by_role in roles.items():
            assert set(by_role) == {"api", "worker"}, name

    def test_services_route_to_api_pods_only(self, manifests: tuple[Manifest, ...]) -> None:
        deployments = of_kind(manifests, "Deployment")
        for service in of_kind(manifests, "Service"):
            selected = [d for d in deployments if selects(service["spec"]["selector"], pod_labels(d))]
            assert [pod_labels(d)["app.kubernetes.io/component"] for d in selected] == ["api"]
            (container,) = pod_spec(selected[0])["containers"]
            port_names = {port["name"] for port in container["ports"]}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in port_names, where(service)


class TestMigrations:
    def test_the_migration_job_runs_itinera_migrate_for_every_service(
        self, manifests: tuple[Manifest, ...]
    ) -> None:
        commands = [argv(container) for job in of_kind(manifests, "Job") for container in all_containers(job)]
        services = {
            option(container, "serve")
            for deployment in of_kind(manifests, "Deployment")
            for container in pod_spec(deployment)["containers"]
        }
        for service in services:
            assert ["itinera", "migrate", service] in commands, f"nothing migrates {service}"
        assert ["itinera", "topics", "create"] in commands

    def test_migration_jobs_do_not_restart_in_place(self, manifests: tuple[Manifest, ...]) -> None:
        for job in of_kind(manifests, "Job"):
            assert pod_spec(job)["restartPolicy"] == "Never", where(job)
            assert job["spec"]["backoffLimit"] >= 1, where(job)
            assert "activeDeadlineSeconds" in job["spec"], where(job)


class TestEnvironments:
    def test_the_dev_overlay_runs_one_small_replica_of_everything(self) -> None:
        manifests = render("overlays/dev")
        for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
            assert autoscaler["spec"]["minReplicas"] == autoscaler["spec"]["maxReplicas"] == 1
        for deployment in of_kind(manifests, "Deployment"):
            (container,) = pod_spec(deployment)["containers"]
            assert container["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
        assert config_data(manifests)["ITINERA_ENVIRONMENT"] == "development"
        (secret,) = of_kind(manifests, "Secret")
        assert secret_data(secret)["ITINERA_AUTH_SECRET"]
        assert "REPLACE-ME" not in yaml.safe_dump_all(manifests)

    def test_the_production_overlay_has_no_dev_secret(self) -> None:
        manifests = render("overlays/production")
        (dev_secret,) = of_kind(render("overlays/dev"), "Secret")
        dev_value = secret_data(dev_secret)["ITINERA_AUTH_SECRET"]
        rendered = yaml.safe_dump_all(manifests)
        # The platform owns `itinera-secrets` in production; an apply must not replace it.
        assert of_kind(manifests, "Secret") == []
        assert dev_value not in rendered
        assert "REPLACE-ME" not in rendered
        assert "ITINERA_AUTH_SECRET" not in rendered
        settings = config_data(manifests)
        assert settings["ITINERA_ENVIRONMENT"] == "production"
        assert settings["ITINERA_AUTH_JWKS_URL"].startswith("https://")

    def test_production_enforces_the_restricted_pod_security_standard(self) -> None:
        (namespace,) = of_kind(render("overlays/production"), "Namespace")
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def test_production_reads_kafka_from_the_strimzi_bootstrap_service(self) -> None:
        bootstrap = config_data(render("overlays/production"))["ITINERA_KAFKA_BOOTSTRAP"]
        assert STRIMZI_BOOTSTRAP.fullmatch(bootstrap), bootstrap

    def test_production_runs_more_replicas_than_dev(self) -> None:
        production = {
            autoscaler["metadata"]["name"]: autoscaler["spec"]
            for autoscaler in of_kind(render("overlays/production"), "HorizontalPodAutoscaler")
        }
        assert production
        for name, spec in production.items():
            assert spec["minReplicas"] >= 3, name
            assert spec["maxReplicas"] > spec["minReplicas"], name

    def test_production_pins_an_image_from_a_registry(self) -> None:
        for workload in workloads(render("overlays/production")):
            for container in all_containers(workload):
                repository, _, tag = container["image"].rpartition(":")
                assert "/" in repository, container["image"]
                assert tag, container["image"]
                assert tag != "latest", container["image"]
