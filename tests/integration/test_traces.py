"""Connected traces: the caller's traceparent becomes the parent of one trace holding the
request's spans (auth, rate limit, cache, model attempt, Firestore commit), and every log line
of the request carries that trace, its span and a pseudonymous subject."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from emulator.stack import ROOT, function_env
from tests.conftest import LocalStack
from tests.integration.trace_probe import TRACEPARENT

TRACE_ID, CALLER_SPAN = TRACEPARENT.split("-")[1:3]


def probe(stack: LocalStack) -> dict[str, Any]:
    env = {
        **os.environ,
        **function_env(stack.settings),
        "TRACE_PROBE_TOKEN": stack.token("tracy"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.trace_probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_one_request_is_one_trace_and_its_log_lines_carry_it(stack: LocalStack) -> None:
    found = probe(stack)
    assert found["status"] == 200
    spans = found["spans"]
    assert {s["trace_id"] for s in spans} == {TRACE_ID}  # one trace, the caller's
    names = {s["name"] for s in spans}
    assert {"POST /v1/chat", "auth", "ratelimit", "cache.lookup", "llm.generate"} <= names
    assert {"llm.attempt", "firestore.commit"} <= names
    server = next(s for s in spans if s["name"] == "POST /v1/chat")
    assert server["parent"] == CALLER_SPAN  # a child of the caller's span
    span_ids = {s["span_id"] for s in spans}
    assert all(s["parent"] in span_ids for s in spans if s is not server)  # all nested in it

    request_lines = [line for line in found["logs"] if line.get("request_id")]
    assert {line["message"] for line in request_lines} >= {"request", "llm call"}
    for line in request_lines:
        assert line["logging.googleapis.com/trace"].endswith(f"/traces/{TRACE_ID}")
        assert line["logging.googleapis.com/spanId"] in span_ids
        assert line["logging.googleapis.com/trace_sampled"] is True
        assert "tracy" not in json.dumps(line)
    # Once the caller is known, its lines name it by a keyed hash.
    for line in (line for line in request_lines if line["message"] in ("request", "llm call")):
        assert line["subject"].startswith("sub_"), line
