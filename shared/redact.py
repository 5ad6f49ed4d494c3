"""Personal data out of log lines (always) and, when set, out of the prompt sent to the model.

Redacted: e-mail addresses, phone numbers written as phone numbers (an international ``+``
prefix, or the usual grouping with spaces, dots, dashes or parentheses), payment card numbers that
pass the Luhn check, IBANs that pass their mod-97 check, and any pattern an operator configures
(``NGX_REDACT_PATTERNS``). Checksums keep ids, timestamps and counters from being taken for cards.
No library on PyPI does this within the cold-start budget (Presidio loads spaCy models); these
are a few compiled expressions, measured by ``python -m tests.bench.redaction``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{3}[ .-]\d{3}[ .-]\d{4})(?![\w])"
)
CARD = r"(?<![\w])(?:\d[ -]?){12,18}\d(?![\w])"
IBAN = r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![\w])"
MARK = "[redacted {kind}]"


def luhn(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    compact = text.replace(" ", "")
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


class Redactor:
    """Replaces personal data in text with ``[redacted KIND]``; one compiled pass per text."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        kinds = [("email", EMAIL), ("card", CARD), ("iban", IBAN), ("phone", PHONE)]
        kinds += [(f"pattern{i}", p) for i, p in enumerate(extra_patterns, 1)]
        self._kinds = [kind for kind, _ in kinds]
        self._pattern = re.compile("|".join(f"(?P<{kind}>{p})" for kind, p in kinds))

    def _replace(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or "data"
        text = match.group(0)
        if kind == "card" and not luhn(re.sub(r"\D", "", text)):
            return text
        if kind == "iban" and not iban_valid(text):
            return text
        return MARK.format(kind=kind if not kind.startswith("pattern") else "data")

    def text(self, value: str) -> str:
        """``value`` with personal data replaced."""
        return self._pattern.sub(self._replace, value)

    def value(self, value: Any) -> Any:
        """Strings inside any JSON-like value redacted (keys are kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value
