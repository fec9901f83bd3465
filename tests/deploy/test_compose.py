"""``docker-compose.yml``, the ``Dockerfile`` and ``.dockerignore``, checked without an engine.

The files are parsed, not run: these tests hold on machines with no container
engine. Where the ``docker compose`` plugin is installed, it also checks the
compose file (that needs no engine either).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from itinera.common.settings import CommonSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INFRASTRUCTURE = ("kafka", "postgres")
INIT = "init"

Service = dict[str, Any]


# --- docker-compose.yml -----------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def services() -> dict[str, Service]:
    found: dict[str, Service] = compose()["services"]
    return found


def app_services() -> dict[str, Service]:
    """The long-running Itinera services: everything but the infrastructure and init."""
    return {
        name: service for name, service in services().items() if name not in INFRASTRUCTURE and name != INIT
    }


def environment(service: Service) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        pairs = (item.partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {key: str(value) for key, value in raw.items()}


def command(service: Service) -> list[str]:
    raw = service["command"]
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def option(arguments: list[str], name: str) -> str:
    assert name in arguments, f"no {name} in {arguments}"
    return arguments[arguments.index(name) + 1]


def healthcheck_text(service: Service) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


class TestKafka:
    def test_kafka_runs_in_kraft_mode_from_the_apache_image(self) -> None:
        kafka = services()["kafka"]
        image, _, tag = kafka["image"].partition(":")
        assert image == "apache/kafka"
        assert tag, "pin the Kafka version"
        assert tag != "latest", "pin the Kafka version"
        settings = environment(kafka)
        assert set(settings["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        node = settings["KAFKA_NODE_ID"]
        assert settings["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@")
        assert not [key for key in settings if "ZOOKEEPER" in key]
        controller = settings["KAFKA_CONTROLLER_LISTENER_NAMES"]
        listener_names = {item.split("://")[0] for item in settings["KAFKA_LISTENERS"].split(",")}
        assert controller in listener_names

    def test_the_services_bootstrap_from_an_advertised_listener(self) -> None:
        settings = environment(services()["kafka"])
        advertised = {item.split("://")[1] for item in settings["KAFKA_ADVERTISED_LISTENERS"].split(",")}
        for name, service in services().items():
            bootstrap = environment(service).get("ITINERA_KAFKA_BOOTSTRAP")
            if bootstrap is not None:
                assert set(bootstrap.split(",")) <= advertised, name

    def test_kafka_health_check_asks_the_broker(self) -> None:
        check = healthcheck_text(services()["kafka"])
        assert "kafka-broker-api-versions.sh" in check or "kafka-topics.sh" in check


class TestPostgres:
    def test_postgres_is_checked_with_pg_isready(self) -> None:
        postgres = services()["postgres"]
        assert postgres["image"] in {"postgres:17", "postgres:18"}
        assert "pg_isready" in healthcheck_text(postgres)

    def test_the_database_url_matches_the_postgres_service(self) -> None:
        postgres = environment(services()["postgres"])
        for name, service in services().items():
            url = environment(service).get("ITINERA_DATABASE_URL")
            if url is None:
                continue
            parts = urlsplit(url)
            assert parts.scheme == "postgresql", name
            assert (parts.hostname, parts.port) == ("postgres", 5432), name
            assert parts.username == postgres["POSTGRES_USER"], name
            assert parts.password == postgres["POSTGRES_PASSWORD"], name
            assert parts.path == f"/{postgres['POSTGRES_DB']}", name

    def test_postgres_18_keeps_its_data_in_a_volume_at_the_parent_folder(self) -> None:
        postgres = services()["postgres"]
        if postgres["image"] != "postgres:18":
            pytest.skip("only PostgreSQL 18 images moved their data folder")
        targets = [volume.split(":")[1] for volume in postgres["volumes"]]
        assert targets == ["/var/lib/postgresql"]


class TestItineraServices:
    def test_every_service_has_a_healthcheck(self) -> None:
        for name, service in services().items():
            check = service.get("healthcheck", {})
            if name == INIT:
                # One-shot: the image's HTTP check would fail on it, so it is off.
                assert check == {"disable": True}
                continue
            assert check.get("test"), f"{name} has no healthcheck"
            assert not check.get("disable"), name

    def test_every_app_service_checks_healthz_on_its_port(self) -> None:
        assert app_services()
        for name, service in app_services().items():
            port = option(command(service), "--port")
            assert f"127.0.0.1:{port}/healthz" in healthcheck_text(service), name

    def test_every_app_service_waits_for_healthy_infrastructure_and_init(self) -> None:
        for name, service in app_services().items():
            depends_on = service["depends_on"]
            for dependency in INFRASTRUCTURE:
                assert depends_on[dependency] == {"condition": "service_healthy"}, name
            assert depends_on[INIT] == {"condition": "service_completed_successfully"}, name

    def test_init_waits_for_healthy_infrastructure(self) -> None:
        depends_on = services()[INIT]["depends_on"]
        assert depends_on == {name: {"condition": "service_healthy"} for name in INFRASTRUCTURE}
        assert services()[INIT]["restart"] == "no"

    def test_every_itinera_service_is_built_from_the_one_dockerfile(self) -> None:
        built = {name: service for name, service in services().items() if "build" in service}
        assert set(built) == {INIT, *app_services()}
        for name, service in built.items():
            assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert len({service["image"] for service in built.values()}) == 1

    def test_init_creates_topics_and_migrates_every_service(self) -> None:
        script = " ".join(command(services()[INIT]))
        assert "itinera topics create" in script
        for service in app_services().values():
            assert f"itinera migrate {option(command(service), 'serve')}" in script

    def test_api_and_worker_run_the_roles_their_names_say(self) -> None:
        for name, service in app_services().items():
            arguments = command(service)
            assert arguments[:2] == ["itinera", "serve"], name
            role = option(arguments, "--role")
            assert name == f"{option(arguments, 'serve')}-{role}"
            assert role in {"api", "worker"}

    def test_the_api_publishes_its_port(self) -> None:
        api = services()["ingestion-api"]
        port = option(command(api), "--port")
        assert port == "8001"
        assert f"{port}:{port}" in api["ports"]

    def test_every_setting_is_one_the_code_reads(self) -> None:
        fields = set(CommonSettings.model_fields)
        for name, service in services().items():
            for key in environment(service):
                if key.startswith("ITINERA_"):
                    assert key.removeprefix("ITINERA_").lower() in fields, f"{name}: {key}"

    def test_consumers_let_kafka_hold_an_idle_fetch(self) -> None:
        # Kafka answers as soon as a record is there: a long wait costs no latency and
        # spares the broker twenty empty fetches a second per idle consumer.
        for name, service in services().items():
            if name in ("kafka", "postgres"):
                continue
            assert int(environment(service)["ITINERA_CONSUMER_FETCH_MAX_WAIT_MS"]) >= 500, name

    def test_docker_compose_accepts_the_file(self) -> None:
        docker = shutil.which("docker")
        plugin = docker and subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=60
        )
        if not docker or not plugin or plugin.returncode != 0:
            pytest.skip("the docker compose plugin is not installed; the parsed checks still ran")
        result = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


# --- Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Stage:
    image: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages, with line continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            image = words[0]
            for key, value in global_args.items():
                image = image.replace(f"${{{key}}}", value).replace(f"${key}", value)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name, ()))
        elif not stages:
            assert instruction.keyword == "ARG", f"{line!r} before the first FROM"
            key, _, value = instruction.arguments.partition("=")
            global_args[key] = value
        else:
            last = stages[-1]
            stages[-1] = Stage(last.image, last.name, (*last.instructions, instruction))
    return global_args, stages


@functools.cache
def dockerfile_stages() -> tuple[Stage, ...]:
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    return tuple(stages)


def final_stage() -> Stage:
    return dockerfile_stages()[-1]


def env_of(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def copies(stage: Stage) -> list[tuple[dict[str, str], list[str]]]:
    """Each COPY as (its --flags, its paths), the destination last."""
    result = []
    for arguments in stage.all("COPY"):
        words = shlex.split(arguments)
        flags = dict(word[2:].partition("=")[::2] for word in words if word.startswith("--"))
        result.append((flags, [word for word in words if not word.startswith("--")]))
    return result


class TestDockerfile:
    def test_the_dockerfile_is_multi_stage_on_python_3_11_slim(self) -> None:
        stages = dockerfile_stages()
        assert len(stages) >= 2
        assert {stage.image for stage in stages} == {"python:3.11-slim"}
        earlier = {stage.name for stage in stages[:-1]}
        from_earlier = [flags["from"] for flags, _ in copies(final_stage()) if "from" in flags]
        assert from_earlier
        assert set(from_earlier) <= earlier

    def test_the_runtime_stage_gets_only_the_venv_from_the_build(self) -> None:
        copied = [paths for flags, paths in copies(final_stage()) if "from" in flags]
        assert copied == [["/opt/venv", "/opt/venv"]]
        assert env_of(final_stage())["PATH"].startswith("/opt/venv/bin:")

    def test_dependencies_are_installed_with_the_constraints(self) -> None:
        commands = " ".join(run for stage in dockerfile_stages()[:-1] for run in stage.all("RUN"))
        assert "-c constraints.txt ./libs/common ./services/*" in commands
        assert "python -m venv /opt/venv" in commands

    def test_the_image_runs_as_a_non_root_user(self) -> None:
        users = final_stage().all("USER")
        assert users, "the runtime stage never sets USER"
        user = users[-1].partition(":")[0]
        assert user not in {"root", "0"}

    def test_the_image_carries_the_schemas_at_app_schemas(self) -> None:
        copied = [
            [path.rstrip("/") for path in paths]
            for flags, paths in copies(final_stage())
            if "from" not in flags
        ]
        assert ["schemas", "/app/schemas"] in copied
        assert env_of(final_stage())["ITINERA_SCHEMAS_DIR"] == "/app/schemas"

    def test_the_image_checks_healthz_with_python(self) -> None:
        (check,) = final_stage().all("HEALTHCHECK")
        assert "CMD" in check
        assert "python" in check
        assert "urllib.request" in check
        urls = [value for key, value in env_of(final_stage()).items() if key in check]
        assert "/healthz" in check or any(url.endswith("/healthz") for url in urls)

    def test_the_default_command_serves_ingestion(self) -> None:
        (default,) = final_stage().all("CMD")
        arguments = json.loads(default)
        assert arguments[:3] == ["itinera", "serve", "ingestion"]


# --- .dockerignore --------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern wins,
    and a pattern that matches a folder matches everything in it."""
    parents = [str(Path(*Path(path).parts[:n])) for n in range(1, len(Path(path).parts) + 1)]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in parents):
            verdict = not negated
    return verdict


class TestDockerignore:
    @pytest.fixture
    def patterns(self) -> list[str]:
        lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
        return [line for line in lines if line and not line.startswith("#")]

    @pytest.mark.parametrize(
        "path",
        [
            "constraints.txt",
            "libs/common/pyproject.toml",
            "libs/common/src/itinera/common/settings.py",
            "services/ingestion/pyproject.toml",
            "services/ingestion/src/itinera/ingestion/app.py",
            "schemas/asyncapi.yaml",
        ],
    )
    def test_the_build_context_holds_what_the_image_needs(self, patterns: list[str], path: str) -> None:
        assert not ignored(path, patterns)

    @pytest.mark.parametrize(
        "path",
        [
            ".venv/bin/python",
            ".git/HEAD",
            ".stack/postgres/PG_VERSION",
            "deploy/k8s/README.md",
            "services/ingestion/tests/test_api.py",
            "libs/common/src/itinera/common/__pycache__/settings.cpython-311.pyc",
        ],
    )
    def test_the_build_context_leaves_out_local_state_and_tests(self, patterns: list[str], path: str) -> None:
        assert ignored(path, patterns)
