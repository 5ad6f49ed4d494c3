"""The function registry is the one list of deployed functions: the code, the local stack, the
OpenAPI build, the image and Terraform all agree with it, and a function missing from any fails."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from emulator.settings import StackSettings, load_stack_settings
from emulator.stack import components
from shared import openapi, registry, web
from tests.conftest import repo_root
from tests.infra import checks
from tests.infra.conftest import INFRA


async def _handler(request: Request, params: dict[str, str]) -> Response:
    return Response()


def test_every_function_folder_is_registered_and_every_registered_function_exists() -> None:
    folders = {p.parent.name for p in (repo_root() / "functions").glob("*/main.py")}
    assert folders == {spec.name for spec in registry.FUNCTIONS}
    for spec in registry.FUNCTIONS:
        source = (repo_root() / spec.source).read_text()
        # Each function builds its router from its own registry entry.
        assert f"web.Router.serve(\n    registry.{spec.name.upper()}," in source


def test_names_and_ports_are_unique_and_spelt_one_way() -> None:
    specs = registry.FUNCTIONS
    assert len({s.name for s in specs}) == len({s.local_port for s in specs}) == len(specs)
    for spec in specs:
        assert registry.function(spec.service) is registry.function(spec.name) is spec
        assert spec.probes.startup in {r.path for r in spec.routes}
        for route in spec.routes:
            assert "{cid}" not in route.path  # one parameter name per idea
    with pytest.raises(KeyError, match="no deployed function"):
        registry.function("billing")


def test_a_router_refuses_handlers_that_do_not_match_the_routes() -> None:
    handlers = {route.operation: _handler for route in registry.STREAM.routes}
    assert web.Router.serve(registry.STREAM, handlers)
    with pytest.raises(RuntimeError, match=r"missing \['healthz', 'open_session', 'readyz'\]"):
        web.Router.serve(registry.STREAM, {"post_stream": _handler})


def test_websocket_routes_are_handed_to_the_launcher_apart() -> None:
    handlers = {route.operation: _handler for route in registry.STREAM.routes}
    router = web.Router.serve(registry.STREAM, handlers)
    assert list(router.sockets) == ["/v1/sessions"]
    assert router.sockets["/v1/sessions"] is handlers["open_session"]  # type: ignore[comparison-overlap]
    with pytest.raises(RuntimeError, match=r"not registered \['extra'\]"):
        web.Router.serve(registry.STREAM, {**handlers, "extra": _handler})


def test_the_stack_runs_each_function_on_its_port_with_the_one_launch_command(
    tmp_path: Path,
) -> None:
    settings = load_stack_settings(stack_dir=tmp_path)
    started = {c.name: c for c in components(settings)}
    for spec in registry.FUNCTIONS:
        component = started[spec.service]
        assert component.port == spec.local_port == settings.function_port(spec)
        assert component.argv == registry.launch_command(spec, "127.0.0.1", spec.local_port)
        assert component.ready_path == spec.probes.startup
    assert {f"stack_{s.name}_port" for s in registry.FUNCTIONS} <= set(StackSettings.model_fields)


def test_the_image_serves_functions_through_the_registry_launcher() -> None:
    dockerfile = (repo_root() / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "functions"]' in dockerfile
    assert registry.launch_command(registry.CHAT, "h", 1, "python")[:3] == [
        "python",
        "-m",
        "functions",
    ]


def test_the_openapi_document_describes_every_public_route() -> None:
    doc = openapi.document()
    assert openapi.undocumented() == []
    assert doc["servers"][0]["url"].endswith(f":{registry.CHAT.local_port}")
    for spec in registry.FUNCTIONS:
        for route in spec.routes:
            documented = route.method.lower() in doc["paths"].get(route.path, {})
            assert documented == (spec.access == "public") or route.path in ("/healthz", "/readyz")


def test_terraform_defines_exactly_the_registered_functions() -> None:
    assert checks.check_services(INFRA) == []


def test_a_function_missing_from_terraform_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = dataclasses.replace(registry.BACKUP, name="billing", local_port=8099)
    monkeypatch.setattr(checks, "FUNCTIONS", (*checks.FUNCTIONS, extra.name))
    problems = checks.check_services(INFRA)
    assert any("billing" in problem for problem in problems), problems


def test_cloud_run_probes_the_paths_the_registry_names() -> None:
    from ops import terraform

    service = terraform.literal(
        terraform.one(
            INFRA / "modules/cloud_run_service", "resource", "google_cloud_run_v2_service", "this"
        )
        or {}
    )
    container = service["template"][0]["containers"][0]
    probes = {
        kind: container[f"{kind}_probe"][0]["http_get"][0]["path"]
        for kind in ("startup", "liveness")
    }
    for spec in registry.FUNCTIONS:
        assert probes == {"startup": spec.probes.startup, "liveness": spec.probes.liveness}
