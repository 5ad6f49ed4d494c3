"""Reading the project's Terraform offline (python-hcl2): blocks, literal values, variables.

No Terraform binary or registry is reachable where this runs (CI, Cloud Build's ops step), so the
checks of `infra/` (tests) and `agentctl preflight` read the `.tf` files themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

INTERNAL = {"__is_block__", "__comments__", "__start_line__", "__end_line__", "__inline_comments__"}


def tf_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tf"))


def parse(path: Path) -> dict[str, Any]:
    """One HCL file (``.tf`` or ``.tfvars``) as python-hcl2 reads it."""
    import hcl2

    with path.open() as handle:
        return dict(hcl2.load(handle))


def unquote(value: Any) -> Any:
    """A literal string as Terraform means it (python-hcl2 keeps the quotes)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def literal(value: Any) -> Any:
    """A value with every string unquoted, recursively (lists and objects included)."""
    if isinstance(value, dict):
        return {unquote(k): literal(v) for k, v in value.items() if k not in INTERNAL}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return unquote(value)


def items(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in body.items():
        if key not in INTERNAL:
            yield unquote(key), value


def is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def blocks(root: Path, kind: str) -> Iterator[tuple[Path, str, str, dict[str, Any]]]:
    """(file, type, name, body) of every ``resource`` / ``data`` block; (file, "", name, body)
    of every ``module`` / ``variable`` / ``output`` block."""
    for path in tf_files(root):
        for entry in parse(path).get(kind, []):
            for first, inner in items(entry):
                if kind in ("resource", "data"):
                    for name, body in items(inner):
                        yield path, first, name, body
                else:
                    yield path, "", first, inner


def one(root: Path, kind: str, rtype: str, name: str) -> dict[str, Any] | None:
    """The body of one block, by type and name (``rtype`` is "" for modules and variables)."""
    for _, t, n, body in blocks(root, kind):
        if (t, n) == (rtype, name):
            return body
    return None


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for entry in parse(path).get("locals", []):
        merged.update(dict(items(entry)))
    return merged


def variable_defaults(module: Path) -> dict[str, Any]:
    return {name: spec.get("default") for _, _, name, spec in blocks(module, "variable")}
