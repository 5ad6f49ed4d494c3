"""An environment's configuration as Terraform would see it, read offline.

The inputs of ``module "platform"`` in ``infra/envs/ENV/main.tf``: literal arguments as written,
``var.X`` resolved from a ``.tfvars`` file when given, else the root variable's default; arguments
not given fall back to the platform module's variable defaults. A root variable with neither value
nor default is *missing*: Terraform would refuse to plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops import terraform

_VAR = re.compile(r"^\$\{var\.(\w+)\}$")
MISSING = object()


class ConfigError(RuntimeError):
    """The environment or a file given cannot be read; the message names it."""


@dataclass
class EnvConfig:
    env: str
    infra: Path
    inputs: dict[str, Any]
    missing: list[str] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.inputs.get(name, MISSING)
        return default if value is MISSING else value

    def module_block(self, module: str, rtype: str, name: str) -> dict[str, Any]:
        """A resource of one of the modules, its arguments as written."""
        body = terraform.one(self.infra / "modules" / module, "resource", rtype, name)
        found: dict[str, Any] = terraform.literal(body or {})
        return found

    def module_resources(self, module: str, rtype: str) -> dict[str, dict[str, Any]]:
        """Every resource of a type in one module: name → arguments as written."""
        found = terraform.blocks(self.infra / "modules" / module, "resource")
        return {n: terraform.literal(body) for _, t, n, body in found if t == rtype}


def load(infra: Path, env: str, var_file: Path | None = None) -> EnvConfig:
    """The platform inputs of ``env``."""
    root = infra / "envs" / env
    if not (root / "main.tf").is_file():
        raise ConfigError(f"no environment {env!r}: {root / 'main.tf'} does not exist")
    given: dict[str, Any] = {}
    if var_file is not None:
        if not var_file.is_file():
            raise ConfigError(f"--var-file {var_file}: no such file")
        try:
            given = terraform.literal(terraform.parse(var_file))
        except Exception as exc:  # python-hcl2 raises lark errors of several kinds
            raise ConfigError(f"--var-file {var_file}: not valid HCL ({exc})") from None
    root_vars = {
        name: terraform.literal(spec.get("default", MISSING)) if "default" in spec else MISSING
        for _, _, name, spec in terraform.blocks(root, "variable")
    }
    module = terraform.one(root, "module", "", "platform")
    if module is None:
        raise ConfigError(f'{root / "main.tf"} has no module "platform"')
    config = EnvConfig(env, infra, {})
    for name, value in terraform.literal(module).items():
        if name in ("source", "depends_on"):
            continue
        ref = _VAR.match(value) if isinstance(value, str) else None
        if ref is None:
            config.inputs[name] = value
            continue
        variable = ref.group(1)
        resolved = given.get(variable, root_vars.get(variable, MISSING))
        if resolved is MISSING:
            config.missing.append(variable)
        config.inputs[name] = resolved
    for name, default in terraform.variable_defaults(infra / "modules" / "platform").items():
        if name not in config.inputs and default is not None:
            config.inputs[name] = terraform.literal(default)
    return config
