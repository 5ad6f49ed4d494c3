"""Personal data never reaches the log sink: each kind is redacted, look-alikes are not."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.logs import configure_logging
from shared.redact import Redactor, iban_valid, luhn

REDACTOR = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ana.lopez+tag@example.co.uk now", "mail [redacted email] now"),
        ("call +44 20 7946 0958 today", "call [redacted phone] today"),
        ("call (415) 555-2671", "call [redacted phone]"),
        ("call 415.555.2671", "call [redacted phone]"),
        ("card 4111 1111 1111 1111 ok", "card [redacted card] ok"),
        ("card 5500-0000-0000-0004", "card [redacted card]"),
        ("iban GB82 WEST 1234 5698 7654 32", "iban [redacted iban]"),
        ("iban DE89370400440532013000", "iban [redacted iban]"),
    ],
)
def test_each_kind_is_redacted(text: str, expected: str) -> None:
    assert REDACTOR.text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 (fails Luhn)",
        "at 2026-12-06T22:17:38.123456+00:00",
        "request 332dda196519417a96cd6582d44e77cb",
        "took 1234567 ms over 12 attempts",
        "GB00 WEST 1234 5698 7654 32 is not a valid IBAN",
        "version 1.2.3",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert REDACTOR.text(text) == text


def test_checksums() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB83WEST12345698765432")


def test_configured_patterns_are_redacted_too() -> None:
    redactor = Redactor([r"EMP-\d{6}"])
    assert redactor.text("employee EMP-123456 asked") == "employee [redacted data] asked"


def test_a_log_line_with_personal_data_reaches_the_sink_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = io.StringIO()
    monkeypatch.setattr("sys.stdout", sink)
    configure_logging("ngx-test", "INFO", Redactor())
    try:
        logging.getLogger("ngx.test").warning(
            "refund for bob@example.com",
            extra={
                "caller": {"phone": "+1 415 555 2671", "cards": ["4111-1111-1111-1111"]},
                "latency_ms": 12.5,
            },
        )
    finally:
        logging.getLogger().handlers[:] = []
    line = json.loads(sink.getvalue())
    assert line["message"] == "refund for [redacted email]"
    assert line["caller"] == {"phone": "[redacted phone]", "cards": ["[redacted card]"]}
    assert line["latency_ms"] == 12.5 and line["severity"] == "WARNING"
    for secret in ("bob@example.com", "415 555 2671", "4111-1111-1111-1111"):
        assert secret not in sink.getvalue()
