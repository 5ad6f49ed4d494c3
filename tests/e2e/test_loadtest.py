"""``agentctl loadtest``: bad scenarios send nothing; a short run produces its results."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from emulator.stack import ROOT, function_env
from ops.loadtest.scenario import BUILT_IN, ScenarioError, load
from tests.conftest import LocalStack


def agentctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "loadtest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Listener:
    """A loopback socket that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (
            '{"name": "x", "duration_s": 10, "rate": [{"at_s": 0, "rps": 5}], '
            '"mix": {"chat": 0.5}}',
            "'mix'",
        ),
        ('{"name": "x", "duration_s": 10, "rate": [{"at_s": 1, "rps": 5}]}', "'rate'"),
        ('{"name": "x", "duration_s": -1, "rate": [{"at_s": 0, "rps": 5}]}', "'duration_s'"),
        ('{"name": "x", "duration_s": 10, "rate": [{"at_s": 0, "rps": "lots"}]}', "'rate.0.rps'"),
        ('{"name": "x", "duration_s": 10, "rate": [], "surge": true}', "'surge'"),
        ('{"name": "x", "duration_s": 10,', "not JSON"),
    ],
)
def test_a_bad_scenario_file_names_the_field_and_sends_nothing(
    tmp_path: Path, content: str, named: str
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(content)
    listener = Listener()
    try:
        result = agentctl("--scenario", str(path), "--url", listener.url, timeout=60)
    finally:
        listener.close()
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "nothing was sent" in result.stderr
    assert listener.connections == 0


def test_unknown_scenarios_and_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="neither a built-in"):
        load("tuesday")
    assert BUILT_IN["normal"].rate_at(30) == 50 and BUILT_IN["high"].rate_at(30) == 200
    spike = BUILT_IN["spike"]
    assert [spike.rate_at(t) for t in (5, 30, 75)] == [50, 500, 50]


def test_a_short_run_against_a_private_stack_writes_its_results(tmp_path: Path) -> None:
    scenario = tmp_path / "short.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "short",
                "duration_s": 6,
                "rate": [{"at_s": 0, "rps": 10}],
                "mix": {"chat": 0.6, "stream": 0.4},
                "repeat_share": 0.5,
                "prompt_pool": 3,
                "conversation_depth": 2,
                "users": 4,
                "warmup_s": 2,
            }
        )
    )
    out = tmp_path / "results"
    result = agentctl("--scenario", str(scenario), "--out", str(out), "--ttft-ms", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slo"]["met"] and summary["error_rate"] == 0
    assert 40 <= summary["requests"] <= 80  # Poisson around 60
    assert summary["cache_hit_rate"] > 0 and summary["ttft_ms"]["p50"] is not None
    assert set(summary["by_kind"]) == {"chat", "stream"}
    assert "chat" in summary["resources"]["cpu_cores_used"]
    rows = list(csv.DictReader((out / "requests.csv").open()))
    assert len(rows) == summary["requests"] and {r["status"] for r in rows} == {"200"}
    assert any(r["follow_up"] == "True" for r in rows)
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_staging_job_command_runs_against_a_stack_and_uploads_its_results(
    stack: LocalStack, gcs_emulator: str, tmp_path: Path
) -> None:
    """What the Cloud Run Job runs (infra/modules/loadtest): --url, an API key from
    NGX_LOADTEST_API_KEY, results uploaded to a bucket, one verdict line for the alert."""
    env = {
        **os.environ,
        **function_env(stack.settings),
        "STORAGE_EMULATOR_HOST": gcs_emulator,
    }
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.cli",
            "keys",
            "create",
            "--name",
            "loadtest",
            "--tier",
            "premium",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    api_key = created.stdout.strip().splitlines()[-1]
    scenario = tmp_path / "tiny.json"
    scenario.write_text(
        json.dumps(
            {
                "name": "tiny",
                "duration_s": 3,
                "rate": [{"at_s": 0, "rps": 5}],
                "users": 2,
                "mix": {"chat": 0.5, "stream": 0.5},
                "warmup_s": 1,
            }
        )
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "ops.cli", "loadtest", "--scenario", str(scenario)),
            *("--url", stack.url("chat"), "--stream-url", stack.url("stream")),
            *("--out", str(tmp_path / "out"), "--upload", "gs://ngx-loadtests/runs"),
        ],
        cwd=ROOT,
        env={**env, "NGX_LOADTEST_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    verdict = json.loads(result.stderr.strip().splitlines()[-1])
    assert verdict["message"] == "loadtest verdict" and verdict["slo_met"] is True
    run = verdict["results"].removeprefix("gs://ngx-loadtests/").rstrip("/")
    listed = httpx.get(
        f"{gcs_emulator}/storage/v1/b/ngx-loadtests/o", params={"prefix": run}, timeout=10
    ).json()
    assert sorted(item["name"] for item in listed["items"]) == [
        f"{run}/{name}" for name in ("chart.png", "requests.csv", "summary.json")
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["error_rate"] == 0  # the API key was accepted
