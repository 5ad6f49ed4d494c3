"""The container image: built as promised, and its contents start each of the four functions.

No Docker engine runs in CI, so the runtime stage is assembled as the Dockerfile builds it: a venv
holding `requirements.txt` alone, the code from the Dockerfile's own COPY lines, the image's ENV
and CMD. A file the image forgets to copy, or a dependency missing from the pins, fails here.
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

from tests.conftest import free_ports
from tests.image_venv import image_venv as build_image_venv

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
FUNCTIONS = ("chat", "stream", "cache_maintenance", "backup")


def stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_image_is_multi_stage_slim_and_unprivileged() -> None:
    build, runtime = stages()
    assert "python:3.11-slim" in DOCKERFILE and build[0].endswith("AS build")
    assert any("compileall" in step for step in build), "bytecode must be compiled at build time"
    user = [step for step in runtime if step.startswith("USER ")]
    assert user == ["USER 10001:10001"]
    assert not any(step.startswith(("RUN pip", "RUN apt")) for step in runtime)
    assert runtime[-1].startswith("CMD ") and "$FUNCTION_TARGET" in runtime[-1]


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

    for path in ("requirements.txt", "shared/chat.py", "functions/chat/main.py"):
        assert sent(path), path
    for path in (".venv", ".git", ".tools", "tests/conftest.py", "infra/envs", ".env", ".stack"):
        assert not sent(path), path


@pytest.fixture(scope="session")
def image_venv() -> Path:
    """A venv with exactly the image's dependencies (the build stage's `pip install`)."""
    return build_image_venv()


def assemble(target: Path) -> dict[str, str]:
    """Copy what the runtime stage holds (the build stage's /app) and return the image's ENV."""
    build, runtime = stages()
    for step in build:
        if step.startswith("COPY ") and not step.startswith("COPY --from"):
            source, dest = step.split()[1:3]
            if dest.startswith("/"):
                continue  # requirements: the venv, which the test process already has
            shutil.copytree(
                ROOT / source, target / dest, ignore=shutil.ignore_patterns("__pycache__")
            )
    env: dict[str, str] = {}
    for step in runtime:
        if step.startswith("ENV "):
            for pair in shlex.split(step[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_starts_from_the_image_layout(
    tmp_path: Path, image_venv: Path, function: str
) -> None:
    app = tmp_path / "app"
    image_env = assemble(app)
    cmd = json.loads(
        stages()[1][-1][4:]
    )  # the exec form: ["sh", "-c", "exec functions-framework …"]
    assert image_env["PYTHONPATH"] == "/app"
    port = free_ports(1)[0]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NGX_", "VIRTUAL_ENV"))},
        "PATH": f"{image_venv / 'bin'}:{os.environ['PATH']}",
        "PYTHONPATH": str(app),
        "FUNCTION_TARGET": function,
        "PORT": str(port),
        "NGX_ENVIRONMENT": "test",
    }
    script = cmd[-1].replace("/app/", f"{app}/").replace("0.0.0.0", "127.0.0.1")
    process = subprocess.Popen(
        [*cmd[:-1], script], cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
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
