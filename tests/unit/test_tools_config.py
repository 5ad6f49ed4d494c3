"""The tools file is operator input: every mistake stops the start with a message naming it, and
a tool's declaration is what the model is shown."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from shared import errors
from shared.agent import config
from shared.agent.egress import Egress
from shared.agent.tools import Tool, ToolRegistry
from shared.errors import SettingsError

GOOD = """
[tools.order_status]
kind = "http"
description = "Look up an order."
url = "https://api.example.com/orders/{order_id}"
allow_hosts = ["api.example.com"]
cache_ttl_s = 30

[tools.order_status.arguments.order_id]
type = "string"
description = "The order id."
pattern = "^[A-Z]-[0-9]{4}$"

[tools.order_status.arguments.verbose]
type = "boolean"
required = false
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tools.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_good_file_declares_its_tools(tmp_path: Path) -> None:
    parsed = config.read(write(tmp_path, GOOD))
    registry = config.build(parsed, Egress(), None, 10.0)
    tool = registry.tools["order_status"]
    assert tool.idempotent and not tool.confirm and tool.scope is None
    schema = json.loads(tool.declaration.parameters)
    assert schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"] == {
        "description": "The order id.",
        "maxLength": 256,
        "pattern": "^[A-Z]-[0-9]{4}$",
        "type": "string",
    }
    assert "title" not in json.dumps(schema)
    assert tool.arguments.model_validate({"order_id": "A-1234"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n',
            "allow_hosts",
        ),
        ('[tools.x]\nkind = "ftp"\ndescription = "d"\n', "kind"),
        ('[tools.Bad-Name]\nkind = "http"\ndescription = "d"\n', "Bad-Name"),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/{id}"\n'
            'allow_hosts = ["a.example"]\n',
            "placeholders without an argument: id",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://{host}/"\n'
            'allow_hosts = ["*"]\n[tools.x.arguments.host]\ntype = "string"\n',
            "fixed host",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://evil.example/"\n'
            'allow_hosts = ["a.example"]\n',
            "not in allow_hosts",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "file:///etc/passwd"\n'
            'allow_hosts = ["*"]\n',
            "http(s)",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\nheaders = { Authorization = "Bearer s3cret" }\n',
            "not configurable",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\nconfirm = true\ncache_ttl_s = 5\n',
            "cannot be cached",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\ncredential = { env = "NGX_NOT_SET_ANYWHERE" }\n',
            "NGX_NOT_SET_ANYWHERE is unset",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\n[tools.x.arguments.q]\npattern = "("\n',
            "does not compile",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\nsurprise = 1\n',
            "surprise",
        ),
        (
            '[tools.x]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\ntimeout_s = 1e308\n',
            "timeout_s",
        ),
        (
            '[tools.x]\nkind = "firestore_lookup"\ndescription = "d"\ncollection = "../up"\n'
            'fields = ["a"]\n',
            "collection",
        ),
        (
            '[tools.x]\nkind = "firestore_lookup"\ndescription = "d"\ncollection = "orders"\n'
            'fields = ["a"]\n[tools.x.arguments.owner]\ntype = "string"\n',
            "arguments must be id or readable fields",
        ),
        (
            '[tools.retrieve]\nkind = "http"\ndescription = "d"\nurl = "https://a.example/"\n'
            'allow_hosts = ["a.example"]\n',
            "built-in",
        ),
        ("[tools.x\n", "NGX_TOOLS_FILE"),
        ('[tools.x]\nkind = "http"\ndescription = "\u0000"\n', "NGX_TOOLS_FILE"),
    ],
)
def test_mistakes_stop_the_start_naming_them(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        config.read(write(tmp_path, text))
    assert named in str(refused.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NGX_TOOLS_FILE"):
        config.read(str(tmp_path / "nowhere.toml"))


def test_no_file_means_no_tools() -> None:
    assert config.read(None).tools == {}


async def _noop(*_: object) -> None:
    return None


def tool(name: str, scope: str | None = None) -> Tool:
    return Tool(name, "d", config.arguments_model(name, {}), _noop, scope=scope)


def test_callers_see_only_the_tools_their_scopes_allow() -> None:
    registry = ToolRegistry([tool("open"), tool("orders", "tools:orders")])
    assert [t.name for t in registry.offered(None, ("chat",))] == ["open"]
    assert [t.name for t in registry.offered(None, ("chat", "tools:orders"))] == ["open", "orders"]
    assert registry.offered([], ("chat", "tools:orders")) == ()
    for name in ("orders", "nonexistent"):
        with pytest.raises(errors.PermissionDenied) as refused:
            registry.offered(["open", name], ("chat",))
        assert refused.value.details == [{"field": "tools", "tool": name}]


def test_a_tool_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        ToolRegistry([tool("a"), tool("a")])
