"""The container image's Python environment, built on this machine.

The Dockerfile's build stage installs `requirements.txt` alone into a venv and compiles it to
bytecode; tests and benchmarks that must run the functions as the image does (no dev tools on
the path, whose optional imports change what loads) use the same venv, built once per
requirements file under `.tools/`.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"  # the runtime image
OPS_REQUIREMENTS = ROOT / "requirements-ops.txt"  # the ops image (includes the runtime's)


def image_venv(requirements: Path = REQUIREMENTS) -> Path:
    """A venv holding exactly ``requirements`` (and what it includes), bytecode compiled; built
    on first use."""
    pinned = REQUIREMENTS.read_bytes() + requirements.read_bytes()
    digest = hashlib.sha256(pinned + sys.version.encode()).hexdigest()[:12]
    venv = ROOT / ".tools" / f"{requirements.stem}-venv-{digest}"
    done = venv / ".complete"  # written last: a venv without it was interrupted and is rebuilt
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "image-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions build it once
        if done.exists():
            return venv
        # Scripts in a venv name their interpreter by absolute path, so it is built in place.
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
        subprocess.run([*pip, "-r", str(requirements)], check=True, timeout=900)
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0", str(venv / "lib")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        done.touch()
    return venv
