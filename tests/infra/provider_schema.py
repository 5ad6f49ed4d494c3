"""The google provider's resource schema, read offline from the cdktf wheel's jsii metadata.

No Terraform registry is reachable from CI, so ``terraform validate`` cannot run. The PyPI wheel
``cdktf-cdktf-provider-google`` describes every resource's arguments and nested blocks (google
provider 6.50.0 for wheel 16.12.1); this module turns it into a small JSON file the tests load:
``{"resource": {type: node}, "data": {type: node}}`` with ``node = {"args": {name: required},
"blocks": {name: node}}``. Run ``python -m tests.infra.provider_schema OUT.json``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

WHEEL = "cdktf-cdktf-provider-google==16.12.1"
# "…/docs/resources/cloud_run_v2_service#template …" → kind, type, argument.
LINK = re.compile(r"/docs/(resources|data-sources)/([a-z0-9_]+)#([a-z0-9_]+)")


def load_jsii(wheel: Path) -> dict[str, Any]:
    """The ``types`` table of the wheel's jsii assembly."""
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(archive.read(member))) as tar:
            handle = tar.extractfile("package/.jsii")
            assert handle is not None
            types: dict[str, Any] = json.load(handle)["types"]
    return types


def _struct(type_ref: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The fqn of the struct a property holds (directly or as a list of them), else None."""
    if "fqn" in type_ref:
        target = types.get(type_ref["fqn"], {})
        return type_ref["fqn"] if target.get("datatype") else None
    if "collection" in type_ref:
        return _struct(type_ref["collection"]["elementtype"], types)
    if "union" in type_ref:
        for option in type_ref["union"]["types"]:
            found = _struct(option, types)
            if found:
                return found
    return None


def _link(prop: dict[str, Any]) -> re.Match[str] | None:
    """The registry link in a property's docs (in its summary or its remarks)."""
    docs = prop.get("docs", {})
    return LINK.search(docs.get("summary", "") + " " + docs.get("remarks", ""))


def _node(fqn: str, types: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Arguments (name → required) and nested blocks of one struct."""
    node: dict[str, Any] = {"args": {}, "blocks": {}}
    for prop in types[fqn].get("properties", []):
        match = _link(prop)
        if not match:
            continue  # meta-arguments (count, for_each, lifecycle …) come from cdktf itself
        name = match.group(3)
        child = _struct(prop["type"], types)
        if child and depth < 12:
            node["blocks"][name] = _node(child, types, depth + 1)
        else:
            node["args"][name] = not prop.get("optional", False)
    return node


def build(types: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every resource and data source config struct, keyed by its Terraform type name."""
    schema: dict[str, dict[str, Any]] = {"resource": {}, "data": {}}
    for fqn, info in types.items():
        parts = fqn.split(".")
        # The resource's own config is `<ns>.<Ns>Config`; nested structs such as
        # `storageBucket.StorageBucketCustomPlacementConfig` share the namespace, not the name.
        if len(parts) != 3 or not info.get("datatype"):
            continue
        if parts[2] != parts[1][:1].upper() + parts[1][1:] + "Config":
            continue
        for prop in info.get("properties", []):
            match = _link(prop)
            if match:
                kind = "resource" if match.group(1) == "resources" else "data"
                schema[kind][f"google_{match.group(2)}"] = _node(fqn, types)
                break
    return schema


def fetch_wheel(directory: Path) -> Path:
    """Download the provider wheel from PyPI (no dependencies) into ``directory``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(directory)],
        check=True,
    )
    return next(directory.glob("cdktf_cdktf_provider_google-*.whl"))


def main() -> None:
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        types = load_jsii(fetch_wheel(Path(tmp)))
    schema = build(types)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, sort_keys=True))
    print(f"{out}: {len(schema['resource'])} resources, {len(schema['data'])} data sources")


if __name__ == "__main__":
    main()
