"""What the benchmarks share: backing services on free ports and function processes started the
way Cloud Run starts them (``python -m functions_framework --asgi``, one worker) from the container
image's environment (a venv of ``requirements.txt`` alone, bytecode compiled)."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from emulator.settings import StackSettings, free_ports
from emulator.stack import ROOT, Stack, function_env
from shared import registry
from shared.settings import LOCAL_HOST
from tests.conftest import stack_settings
from tests.image_venv import image_venv

HELLO = Path(__file__).resolve().parent / "hello" / "main.py"
# Benchmarks measure the service, not its limits.
UNLIMITED = {
    "rate_limit_ip_per_minute": 10**9,
    "rate_limit_tiers": {"free": 10**9, "standard": 10**9, "premium": 10**9},
}


def function_python() -> Path:
    """The image environment's interpreter; the product's code compiled as in the image."""
    venv = image_venv()
    subprocess.run([venv / "bin" / "python", "-m", "compileall", "-q", ROOT / "shared"], check=True)
    return venv / "bin" / "python"


def function_env_of(settings: StackSettings, **extra: str) -> dict[str, str]:
    """A function process's environment: this one without its venv, plus the stack's settings."""
    inherited = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return {**inherited, **function_env(settings), **extra}


@contextlib.contextmanager
def backing(only: tuple[str, ...], **settings: Any) -> Iterator[StackSettings]:
    """Emulators and servers on free ports, stopped on exit."""
    with tempfile.TemporaryDirectory() as state:
        config = stack_settings(stack_dir=Path(state), **UNLIMITED, **settings)
        stack = Stack(config, only=only)
        try:
            stack.start(timeout=90)
            yield config
        finally:
            stack.stop()


@contextlib.contextmanager
def baseline_worktree(revision: str, folder: Path) -> Iterator[Path]:
    """``revision`` checked out in a temporary git worktree under ``folder``, removed on exit:
    the code a benchmark measures this checkout against, in the same run."""
    worktree = folder / "baseline"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield worktree
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )


@dataclass
class Function:
    url: str
    process: subprocess.Popen[bytes]

    def rss_kib(self) -> int:
        """Resident memory of the function's process tree (gunicorn master and worker)."""
        pids = [self.process.pid, *_children(self.process.pid)]
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the process tree (master and worker)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / ticks


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def command(target: str, source: Path, port: int) -> list[str]:
    """How a registered function starts in the image; the hello world, as functions-framework's
    own command line starts a bare function (the baseline)."""
    if source != HELLO:
        spec = registry.function(target)
        return registry.launch_command(spec, LOCAL_HOST, port, str(function_python()))
    framework = [str(function_python()), "-m", "functions_framework", "--asgi"]
    return [*framework, "--target", target, "--source", str(source), *_listen(port)]


def _listen(port: int) -> list[str]:
    return ["--host", LOCAL_HOST, "--port", str(port)]


def launch(
    target: str, source: Path, settings: StackSettings, root: Path = ROOT, **env: str
) -> subprocess.Popen[bytes]:
    """A function process; ``root``: the checkout whose code it runs (another revision's)."""
    port = free_ports(1)[0]
    process = subprocess.Popen(
        command(target, source, port),
        env=function_env_of(settings, **env, PYTHONPATH=str(root)),
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    process.port = port  # type: ignore[attr-defined]
    return process


@contextlib.contextmanager
def running(
    target: str,
    settings: StackSettings,
    source: Path | None = None,
    root: Path = ROOT,
    **env: str,
) -> Iterator[Function]:
    """A function process, ready (its health check answers), stopped on exit."""
    path = source or root / "functions" / target / "main.py"
    process = launch(target, path, settings, root, **env)
    url = f"http://{LOCAL_HOST}:{process.port}"  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        probe = "/" if path == HELLO else "/healthz"
        while True:
            try:
                if httpx.get(url + probe, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} did not start")
            time.sleep(0.05)
        yield Function(url, process)
    finally:
        process.terminate()
        process.wait(10)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
