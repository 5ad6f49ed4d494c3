"""Each Terraform module's README: its inputs and outputs, generated from the `.tf` files.

``python -m tests.infra.module_docs`` rewrites the generated part of every
``infra/modules/*/README.md`` (creating the file, with the module's header comment as its
introduction, when missing); `tests/infra/test_module_conventions.py` fails when a README drifts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ops.terraform import blocks, literal

MODULES = Path(__file__).resolve().parents[2] / "infra" / "modules"
BEGIN = "<!-- BEGIN GENERATED: python -m tests.infra.module_docs -->"
END = "<!-- END GENERATED -->"


def _type(spec: dict[str, Any]) -> str:
    return str(spec.get("type", "any")).removeprefix("${").removesuffix("}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(module: Path) -> str:
    """The generated section: an inputs table and an outputs table."""
    lines = [
        BEGIN,
        "",
        "## Inputs",
        "",
        "| name | description | type | default |",
        "|---|---|---|---|",
    ]
    for _, _, name, spec in blocks(module, "variable"):
        value = spec.get("default", None) if "default" in spec else None
        default = "required" if "default" not in spec else f"`{json.dumps(literal(value))}`"
        description = _cell(str(literal(spec.get("description", ""))))
        lines.append(f"| `{name}` | {description} | `{_cell(_type(spec))}` | {_cell(default)} |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for _, _, name, spec in blocks(module, "output"):
        lines.append(f"| `{name}` | {_cell(str(literal(spec.get('description', ''))))} |")
    return "\n".join([*lines, "", END])


def introduction(module: Path) -> str:
    """The header comment of the module's main.tf, as prose."""
    header = []
    for line in (module / "main.tf").read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    return " ".join(header)


def readme(module: Path) -> str:
    """The README as it should be: the hand-written part kept, the generated part anew."""
    path = module / "README.md"
    if path.exists() and BEGIN in path.read_text():
        before = path.read_text().split(BEGIN, 1)[0]
    else:
        before = f"# Module `{module.name}`\n\n{introduction(module)}\n\n"
    return before + render(module) + "\n"


def main() -> None:
    for module in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        (module / "README.md").write_text(readme(module))


if __name__ == "__main__":
    main()
