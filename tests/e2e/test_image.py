"""The container images: built as promised, and their contents run what they are for.

No Docker engine runs in CI, so each image is assembled as the Dockerfile builds it: a venv holding
its requirements file alone, the code from the build stage's own COPY lines, the image's ENV and
command. The runtime image starts each registered function and cannot import operator code; the
ops image runs agentctl. A file an image forgets to copy, or a dependency missing from the pins,
fails here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from emulator.settings import free_ports
from shared import registry
from tests.image_venv import OPS_REQUIREMENTS, REQUIREMENTS
from tests.image_venv import image_venv as build_image_venv

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
FUNCTIONS = [spec.name for spec in registry.FUNCTIONS]


def stages() -> dict[str, list[str]]:
    """Instructions per stage name, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = result.setdefault(line.split()[-1], [])
        if current is not None:
            current.append(line)
    return result


def test_images_are_multi_stage_slim_and_unprivileged() -> None:
    found = stages()
    assert list(found) == ["build", "build-ops", "ops", "runtime"]  # runtime last: the default
    assert "python:3.11-slim" in DOCKERFILE
    for name in ("build", "build-ops"):
        assert any("compileall" in step for step in found[name]), "bytecode compiled at build"
    for name in ("runtime", "ops"):
        stage = found[name]
        assert [step for step in stage if step.startswith("USER ")] == ["USER 10001:10001"]
        assert not any(step.startswith(("RUN pip", "RUN apt")) for step in stage)
    assert found["runtime"][-1] == 'CMD ["python", "-m", "functions"]'
    assert 'ENTRYPOINT ["python", "-m", "ops.cli"]' in found["ops"]
    runtime_copies = " ".join(step for step in found["build"] if step.startswith("COPY "))
    assert "ops/" not in runtime_copies and "requirements-ops" not in runtime_copies
    for development_only in ("emulator/", "playground/", "clients/"):
        assert development_only not in DOCKERFILE.replace("# ", ""), development_only


def test_dockerignore_keeps_out_everything_but_the_product() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:
        keep = True
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    for path in ("requirements.txt", "shared/chat.py", "functions/chat/main.py", "ops/cli.py"):
        assert sent(path), path
    development = ("emulator", "playground/index.html", "clients/typescript/src/client.ts")
    for path in (
        ".venv",
        ".git",
        ".tools",
        "tests/conftest.py",
        "infra/envs",
        ".env",
        *development,
    ):
        assert not sent(path), path


@pytest.fixture(scope="session")
def image_venv() -> Path:
    """A venv with exactly the runtime image's dependencies (the build stage's `pip install`)."""
    return build_image_venv(REQUIREMENTS)


@pytest.fixture(scope="session")
def ops_venv() -> Path:
    """A venv with exactly the ops image's dependencies."""
    return build_image_venv(OPS_REQUIREMENTS)


def assemble(target: Path, stage: str) -> dict[str, str]:
    """Copy what an image holds (its build stage's /app) and return the image's ENV."""
    found = stages()
    build = found["build" if stage == "runtime" else "build-ops"]
    for step in build:
        if step.startswith("COPY ") and not step.startswith("COPY --from"):
            *sources, dest = step.split()[1:]
            if dest.startswith("/"):
                continue  # requirements: the venv, which the test process already has
            for source in sources:
                shutil.copytree(
                    ROOT / source, target / dest, ignore=shutil.ignore_patterns("__pycache__")
                )
    env: dict[str, str] = {}
    for step in found[stage]:
        if step.startswith("ENV "):
            for pair in shlex.split(step[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_env(app: Path, venv: Path, **extra: str) -> dict[str, str]:
    """The process environment of a container of an assembled image."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NGX_", "VIRTUAL_ENV"))},
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "PYTHONPATH": str(app),
        "NGX_ENVIRONMENT": "test",
        **extra,
    }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_starts_from_the_image_layout(
    tmp_path: Path, image_venv: Path, function: str
) -> None:
    app = tmp_path / "app"
    env_of_image = assemble(app, "runtime")
    cmd = json.loads(stages()["runtime"][-1][4:])  # the exec form: ["python", "-m", "functions"]
    assert env_of_image["PYTHONPATH"] == "/app"
    port = free_ports(1)[0]
    env = image_env(app, image_venv, FUNCTION_TARGET=function, PORT=str(port), HOST="127.0.0.1")
    process = subprocess.Popen(
        cmd, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the function did not start"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        # The code served is the image's copy, not the checkout's.
        loaded = subprocess.run(
            ["python", "-c", "import shared; print(shared.__file__)"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert loaded.stdout.strip() == str(app / "shared/__init__.py")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_runtime_image_cannot_import_operations_code(tmp_path: Path, image_venv: Path) -> None:
    app = tmp_path / "app"
    assemble(app, "runtime")
    env = image_env(app, image_venv)
    # (monitoring_v3 is the runtime's too: the reports function writes business metrics)
    operator_only = ["ops", "emulator", "google.cloud.run_v2"]
    tools = ["matplotlib", "aiohttp", "pytest"]
    probe = (
        "import importlib.util as u\n"
        "def there(m):\n"
        "    try:\n        return u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n        return False\n"
        f"print([m for m in {operator_only + tools!r} if there(m)])"
    )
    found = subprocess.run(
        ["python", "-c", probe], cwd=app, env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
    refused = subprocess.run(
        ["python", "-c", "import ops.cli"], cwd=app, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "No module named 'ops'" in refused.stderr


def test_the_ops_image_runs_agentctl_without_development_code(
    tmp_path: Path, ops_venv: Path
) -> None:
    app = tmp_path / "app"
    assemble(app, "ops")
    assert (app / "ops" / "cli.py").exists() and not (app / "functions").exists()
    env = image_env(app, ops_venv)
    agentctl = ["python", "-m", "ops.cli"]
    version = subprocess.run(
        [*agentctl, "--version"], cwd=app, env=env, capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("agentctl ")
    listed = subprocess.run(
        [*agentctl, "functions", "--names"], cwd=app, env=env, capture_output=True, text=True
    )
    assert listed.stdout.split() == [spec.service for spec in registry.FUNCTIONS]
    stack = subprocess.run(
        [*agentctl, "stack", "up"], cwd=app, env=env, capture_output=True, text=True
    )
    assert stack.returncode == 2 and "the ops image does not ship" in stack.stderr
    canary = subprocess.run(
        [*agentctl, "canary", "--help"], cwd=app, env=env, capture_output=True, text=True
    )
    assert canary.returncode == 0, canary.stderr
