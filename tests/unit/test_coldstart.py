"""The cold-start collector pause: off while a function loads, back on after its first answer.

Each case runs in a fresh interpreter, as a function process would, so the test session's own
collector is never touched.
"""

from __future__ import annotations

import subprocess
import sys

from emulator.stack import ROOT


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_pauses_and_resume_freezes_the_start_up_heap() -> None:
    out = run(
        "import gc\n"
        "from shared import coldstart\n"
        "print(gc.isenabled(), coldstart.paused())\n"
        "coldstart.resume()\n"
        "print(gc.isenabled(), coldstart.paused(), gc.get_freeze_count() > 1000)\n"
        "coldstart.resume()\n"  # a second call changes nothing
        "print(gc.isenabled())\n"
    )
    assert out.splitlines() == ["False True", "True False True", "True"]


def test_a_forking_parent_resumes_and_the_child_waits_for_its_first_request() -> None:
    out = run(
        "import gc, os\n"
        "from shared import coldstart\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print('child', gc.isenabled(), flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('parent', gc.isenabled())\n"
    )
    assert sorted(out.splitlines()) == ["child False", "parent True"]


def test_a_collector_turned_off_by_the_process_stays_off() -> None:
    out = run(
        "import gc\n"
        "gc.disable()\n"
        "from shared import coldstart\n"
        "coldstart.resume()\n"
        "print(gc.isenabled())\n"
    )
    assert out == "False"
