"""Fuzzing with the hostile input families a security review found: reserved ids, deep nesting,
huge numbers, invalid Unicode and control characters, in every field and path of every function.
Whatever the mix, the answer is never a 5xx and always the error envelope (or a success)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import devtokens
from tests.conftest import LocalStack

RESERVED = st.from_regex(r"__[A-Za-z0-9_]{0,12}__", fullmatch=True)
CONTROL = st.text(st.characters(codec="utf-8", categories=["Cc"]), min_size=1, max_size=12)
SURROGATE = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}")  # an escaped lone half
HUGE = st.integers(4_400, 12_000).map(lambda n: "9" * n)  # past Python's int parsing limit
DEEP = st.integers(1_000, 30_000).map(lambda n: "[" * n)  # past the JSON parser's depth
# A response schema nested past its level limit, or past the JSON parser's, closed properly.
DEEP_SCHEMA = st.integers(9, 3_000).map(lambda n: '{"items": ' * n + "{}" + "}" * n)
# Lists of names that leave their root, point at private addresses or are reserved (tools).
HOSTILE_NAMES = st.lists(
    st.one_of(
        RESERVED,
        CONTROL,
        st.sampled_from(["../../etc/passwd", "http://169.254.169.254/", "[::1]", "cancel_order"]),
    ),
    max_size=4,
).map(json.dumps)


def json_string(value: str) -> str:
    return json.dumps(value)


# A JSON value from one family, as text to splice into a body.
HOSTILE_VALUE = st.one_of(
    RESERVED.map(json_string),
    CONTROL.map(json_string),
    SURROGATE.map(lambda escape: f'"x{escape}y"'),
    HUGE,
    DEEP,
    DEEP_SCHEMA,
    HOSTILE_NAMES,
    st.text(max_size=20).map(json_string),  # and ordinary values among them
)
FIELDS = ["message", "conversation_id", "request_id", "tier", "action", "sink", "backup_id"]
FIELDS += ["temperature", "max_output_tokens", "language"]  # request options
FIELDS += ["tools", "response_schema", "decision"]  # the agent's options and decisions
TARGETS = [("chat", "/v1/chat"), ("stream", "/v1/chat:stream")]
TARGETS += [("chat", "/v1/confirmations/cf_AAAAAAAAAAAAAAAA")]
TARGETS += [("cache-maintenance", "/"), ("backup", "/")]


@st.composite
def bodies(draw: Any) -> bytes:
    """A JSON object (or a bare hostile value) with hostile values in some of the fields."""
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        return str(draw(HOSTILE_VALUE)).encode("utf-8", "surrogatepass")
    fields = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True))
    parts = [f'"{name}": {draw(HOSTILE_VALUE)}' for name in fields]
    return ("{" + ", ".join(parts) + "}").encode("utf-8", "surrogatepass")


def headers_for(stack: LocalStack, function: str) -> dict[str, str]:
    if function in ("chat", "stream"):
        return stack.auth("fuzzer")
    account = devtokens.scheduler_account(stack.settings)
    token = devtokens.invoker_token(stack.settings, account, stack.url(function))
    return {"Authorization": f"Bearer {token}"}


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details", "request_id"}


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(target=st.sampled_from(TARGETS), body=bodies())
def test_hostile_bodies_never_fail_the_server(
    local_stack: LocalStack, target: tuple[str, str], body: bytes
) -> None:
    function, path = target
    headers = {**headers_for(local_stack, function), "Content-Type": "application/json"}
    response = httpx.post(
        f"{local_stack.url(function)}{path}", content=body, headers=headers, timeout=60
    )
    check(response)


IDS = st.one_of(RESERVED, CONTROL, st.text(max_size=30), SURROGATE.map(lambda e: "a" + e))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(conversation_id=IDS, page_token=IDS, method=st.sampled_from(["GET", "DELETE"]))
def test_hostile_ids_in_paths_and_queries_never_fail_the_server(
    local_stack: LocalStack, conversation_id: str, page_token: str, method: str
) -> None:
    chat = local_stack.url("chat")
    headers = local_stack.auth("fuzzer")
    path = quote(conversation_id.encode("utf-8", "surrogatepass"), safe="") or "x"
    check(httpx.request(method, f"{chat}/v1/conversations/{path}", headers=headers, timeout=30))
    check(
        httpx.get(
            f"{chat}/v1/conversations",
            params={"page_token": page_token},
            headers=headers,
            timeout=30,
        )
    )
    decision = {"decision": "approve"}
    check(httpx.post(f"{chat}/v1/confirmations/{path}", json=decision, headers=headers, timeout=30))


# Header values a client can send: Latin-1 text without controls, reserved ids, over-long keys.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
HEADER_VALUES = st.one_of(RESERVED, HEADER_TEXT, st.integers(250, 400).map(lambda n: "k" * n)).map(
    str.strip
)  # HTTP itself drops the whitespace around a value


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    target=st.sampled_from([("chat", "/v1/chat"), ("stream", "/v1/chat:stream")]),
    header=st.sampled_from(["Idempotency-Key", "Last-Event-ID"]),
    value=HEADER_VALUES,
)
def test_hostile_replay_headers_never_fail_the_server(
    local_stack: LocalStack, target: tuple[str, str], header: str, value: str
) -> None:
    function, path = target
    headers = [(k.encode(), v.encode()) for k, v in headers_for(local_stack, function).items()]
    headers.append((header.encode(), value.encode("latin-1")))
    response = httpx.post(
        f"{local_stack.url(function)}{path}", json={"message": "hi"}, headers=headers, timeout=60
    )
    check(response)
