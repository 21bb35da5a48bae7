"""The deployment kit agrees with the Makefile, the settings and the locks (no registry needed).

Dockerfile, compose.yaml and deploy/zai-video-bot.service must run the command `make run` runs,
from the lock it installs, as a non-root user, with the database on the volume, the health
check on /healthz, a stop grace period longer than the shutdown, and every required setting
passed in from the operator's .env. Every package the code imports must be declared.
"""

from __future__ import annotations

import ast
import configparser
import inspect
import json
import re
import shlex
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import yaml

from bot.engine import Engine
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"bot", "cogs", "storage", "tests"}
RUNTIME_DIRS = ("bot", "cogs", "storage")


def text(name: str) -> str:
    """A file of the repository."""
    return (ROOT / name).read_text()


def makefile_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = text("Makefile").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def run_command() -> list[str]:
    """`make run`'s command without the venv prefix: ["python", "-m", "bot"]."""
    [line] = makefile_recipe("run")
    argv = shlex.split(line)
    assert argv[0] == "$(BIN)/python"
    return ["python", *argv[1:]]


def dockerfile() -> dict[str, list[str]]:
    """Dockerfile instructions (continuation lines joined) by keyword."""
    joined = re.sub(r"\\\n\s*", " ", text("Dockerfile"))
    found: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def docker_env(instructions: dict[str, list[str]]) -> dict[str, str]:
    """Variables set by ENV."""
    pairs = [p.split("=", 1) for line in instructions["ENV"] for p in shlex.split(line)]
    return dict(pairs)


def compose_service() -> dict[str, Any]:
    """The bot service of compose.yaml."""
    return yaml.safe_load(text("compose.yaml"))["services"]["bot"]


def unit() -> configparser.ConfigParser:
    """The systemd unit (repeated keys such as Environment= kept, joined by newlines)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_join_repeated(text("deploy/zai-video-bot.service")))
    return parser


def _join_repeated(source: str) -> str:
    """Give repeated keys distinct names (Environment=, Environment#2=...)."""
    seen: dict[tuple[str, str], int] = {}
    out, section = [], ""
    for line in source.splitlines():
        if line.startswith("["):
            section = line
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            n = seen[(section, key)] = seen.get((section, key), 0) + 1
            line = f"{key}#{n}={value}" if n > 1 else line
        out.append(line)
    return "\n".join(out)


def unit_values(section: configparser.SectionProxy, key: str) -> list[str]:
    """Every value of a possibly repeated key."""
    return [v for k, v in section.items() if k == key or k.startswith(f"{key}#")]


def shutdown_bound() -> float:
    """Longest clean shutdown: the engine waits `submit_grace` for submits, then for events."""
    grace = inspect.signature(Engine.close).parameters["submit_grace"].default
    return 2 * grace + 10  # + closing the gateway and the database


def seconds(value: str) -> float:
    """`60s`, `1m30s`, `90` as seconds."""
    total = 0.0
    for number, unit_ in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value):
        total += float(number) * {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600}[unit_]
    return total


def required_settings() -> set[str]:
    """Settings without a default, as environment variables."""
    return {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}


def setting_names() -> set[str]:
    """Every setting's environment variable."""
    return {name.upper() for name in Settings.model_fields}


def test_dockerfile_runs_make_run_from_the_runtime_lock_as_a_user() -> None:
    ins = dockerfile()
    [base] = ins["FROM"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    assert "python_version >= (3, 11)" in text("Makefile").replace(
        "sys.version_info", "python_version"
    )
    assert tomllib.loads(text("pyproject.toml"))["project"]["requires-python"] == ">=3.11"
    [cmd] = ins["CMD"]
    assert ast.literal_eval(cmd) == run_command()
    install = [r for r in ins["RUN"] if "pip install" in r]
    assert install == ["python -m pip install --require-hashes -r requirements.lock"]
    assert "requirements.lock" in next(r for r in makefile_recipe("$(STAMP)") if "PIP_INSTALL" in r)
    copied = {c.split()[0].rstrip("/") for c in ins["COPY"]}
    assert set(RUNTIME_DIRS) <= copied and "tests" not in copied and ".env" not in copied
    [user] = ins["USER"]
    assert user not in ("root", "0") and any("useradd" in r and user in r for r in ins["RUN"])


def test_dockerfile_volume_health_check_and_settings() -> None:
    ins = dockerfile()
    env = docker_env(ins)
    assert ast.literal_eval(ins["VOLUME"][0]) == ["/data"]
    assert Settings(
        _env_file=None, discord_token="t", zai_api_key="k", **{k.lower(): v for k, v in env.items()}
    ).database_path.parent == Path("/data")  # type: ignore[call-arg]
    assert set(env) <= setting_names() | {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "PIP_NO_CACHE_DIR",
    }
    assert not required_settings() & set(env)  # secrets never baked into the image
    [health] = ins["HEALTHCHECK"]
    options, _, command = health.partition("CMD")
    assert ast.literal_eval(command.strip()) == [*run_command(), "health"]
    assert env["METRICS_PORT"] and env["METRICS_HOST"] == "0.0.0.0"
    timeout = seconds(re.search(r"--timeout=(\S+)", options).group(1))  # type: ignore[union-attr]
    from bot.metrics import DB_WRITE_TIMEOUT, HEALTH_CLI_TIMEOUT

    assert DB_WRITE_TIMEOUT < HEALTH_CLI_TIMEOUT < timeout
    assert ins["EXPOSE"] == [env["METRICS_PORT"]]


def test_compose_restarts_waits_for_shutdown_and_passes_settings() -> None:
    service = compose_service()
    env = {k: str(v) for k, v in service["environment"].items()}
    assert service["build"] == "."
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    assert seconds(service["stop_grace_period"]) >= shutdown_bound()
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert service["env_file"] == [".env"]
    assert set(env) <= setting_names() and not required_settings() & set(env)
    volume = service["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in yaml.safe_load(text("compose.yaml"))["volumes"]
    assert env["DATABASE_URL"] == docker_env(dockerfile())["DATABASE_URL"]
    assert env["METRICS_PORT"] == docker_env(dockerfile())["METRICS_PORT"]
    assert service["ports"] == [f"127.0.0.1:{env['METRICS_PORT']}:{env['METRICS_PORT']}"]


def test_systemd_unit_runs_make_run_as_a_user() -> None:
    service = unit()["Service"]
    workdir = service["WorkingDirectory"]
    assert shlex.split(service["ExecStart"]) == [f"{workdir}/.venv/bin/python", *run_command()[1:]]
    assert "install: $(STAMP)" in text("Makefile")  # what makes that .venv: the runtime lock
    assert service["User"] not in ("root", "0")
    assert service["EnvironmentFile"] == f"{workdir}/.env"
    assert service["Restart"] in ("on-failure", "always")
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert seconds(service["TimeoutStopSec"]) >= shutdown_bound()
    env = dict(v.split("=", 1) for v in unit_values(service, "Environment"))
    assert set(env) <= setting_names() and not required_settings() & set(env)
    state = Path("/var/lib") / service["StateDirectory"]
    db = Settings(
        _env_file=None, discord_token="t", zai_api_key="k", database_url=env["DATABASE_URL"]
    )  # type: ignore[call-arg]
    assert db.database_path.parent == state
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_every_required_setting_is_in_the_env_example() -> None:
    example = {
        line.split("=", 1)[0].strip()
        for line in text(".env.example").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    documented = {
        line.lstrip("# ").split("=", 1)[0].strip()
        for line in text(".env.example").splitlines()
        if "=" in line
    }
    assert required_settings() <= example
    assert setting_names() <= documented
    readme = text("README.md")
    assert all(f"`{name}`" in readme for name in setting_names())


def imported_packages(*dirs: str) -> set[str]:
    """Top-level third-party modules imported under `dirs`."""
    found = set()
    for folder in dirs:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - LOCAL - set(sys.stdlib_module_names) - {"__future__"}


def declared(extra: str | None = None) -> set[str]:
    """Normalised distribution names of pyproject's dependencies (plus an extra)."""
    project = tomllib.loads(text("pyproject.toml"))["project"]
    deps = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in deps}


def locked(name: str) -> set[str]:
    """Normalised names pinned in a lock file."""
    return {_norm(m) for m in re.findall(r"^([A-Za-z0-9_.-]+)==", text(name), re.M)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(modules: set[str]) -> set[str]:
    """The distributions that provide these import names."""
    mapping = packages_distributions()
    missing = {m for m in modules if m not in mapping}
    assert not missing, f"imported but not installed: {missing}"
    return {_norm(d) for m in modules for d in mapping[m][:1]}


def test_every_imported_package_is_declared_and_locked() -> None:
    runtime = distributions(imported_packages(*RUNTIME_DIRS))
    assert runtime <= declared(), runtime - declared()
    assert runtime <= locked("requirements.lock")
    bench = {"zai-sdk"}
    tests = distributions(imported_packages("tests") - {"zai"}) | runtime
    assert tests <= declared("test"), tests - declared("test")
    assert tests <= locked("requirements-dev.lock")
    assert bench <= locked("requirements-bench.lock")
    assert locked("requirements.lock") <= locked("requirements-dev.lock")


def test_locks_pin_with_hashes_and_markers() -> None:
    for name in ("requirements.lock", "requirements-dev.lock"):
        lock = text(name)
        requirements = [line for line in lock.splitlines() if line and line[0].isalnum()]
        assert requirements and all(re.match(r"[A-Za-z0-9_.-]+==[\w.]+ ", r) for r in requirements)
        entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n", 1)[1])
        assert all("--hash=sha256:" in e for e in entries if "==" in e), name
        assert re.search(r"^audioop-lts==\S+ ; python_full_version >= '3\.13'", lock, re.M)
        assert "make lock" in lock.splitlines()[1]  # regenerated by the documented command
    assert "test" not in " ".join(locked("requirements.lock")) and "ruff" not in locked(
        "requirements.lock"
    )


def test_grafana_dashboard_uses_only_metrics_the_bot_serves() -> None:
    dashboard = json.loads(text("docs/grafana-dashboard.json"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", m)
        for e in exprs
        for m in re.findall(r"videobot_\w+", e)
    }
    served = set(re.findall(r'"(videobot_\w+)"', text("bot/metrics.py")))
    assert used and used <= served, used - served
