"""The playground's server: tokens only for its development users, no file outside its folders,
and every failure in the API's error envelope."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from starlette.testclient import TestClient

from emulator import playground


def nowhere(key_dir: Path) -> playground.Upstreams:
    """Upstreams where nothing listens: the emulator view fails cleanly."""
    return playground.Upstreams(
        chat_url="http://127.0.0.1:1",
        stream_url="http://127.0.0.1:2",
        vertex_admin="http://127.0.0.1:9",
        redis_url="redis://127.0.0.1:9/0",
        key_dir=key_dir,
        issuer="http://127.0.0.1:3",
        audience="ngx-local",
    )


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    for name in ("BUILT", "CLIENT"):  # built or not on this machine, a folder with one file
        folder = tmp_path / name
        folder.mkdir()
        (folder / "app.js").write_text("export {};\n")
        monkeypatch.setattr(playground, name, folder)
    upstreams = nowhere(tmp_path)
    return TestClient(playground.app(upstreams), base_url="http://127.0.0.1:8788")


OWN = {"Origin": "http://127.0.0.1:8788"}


def test_a_development_user_gets_a_token_with_its_scopes(client: TestClient) -> None:
    response = client.post("/api/users/olivia/token", headers=OWN)
    assert response.status_code == 200
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "olivia" and claims["scopes"] == ["tools:orders"]
    assert claims["aud"] == "ngx-local"


@pytest.mark.parametrize(
    "user", ["mallory", "__alice__", "alice%00", "a" * 5000, "%E2%80%AE", "..%2F..%2Fetc"]
)
def test_anyone_else_is_404_in_the_envelope(client: TestClient, user: str) -> None:
    response = client.post(f"/api/users/{user}/token", headers=OWN)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and len(error["message"]) < 80


def test_tokens_are_minted_by_post_only(client: TestClient) -> None:
    assert client.get("/api/users/alice/token", headers=OWN).status_code == 405


@pytest.mark.parametrize(
    "origin",
    [None, "http://127.0.0.1:9999", "http://evil.example", "null", "http://127.0.0.1:8788.evil"],
)
def test_tokens_only_for_a_page_of_the_playground_origin(
    client: TestClient, origin: str | None
) -> None:
    headers = {"Origin": origin} if origin is not None else {}
    response = client.post("/api/users/alice/token", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_rebound_host_name_is_refused(client: TestClient) -> None:
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends its own Host."""
    response = client.post(
        "/api/users/alice/token",
        headers={"Host": "evil.example:8788", "Origin": "http://evil.example:8788"},
    )
    assert response.status_code == 400
    assert b"token" not in response.content


def test_the_server_refuses_to_listen_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "sys.argv", ["playground", "--host", "0.0.0.0", "--port", "1", "--upstreams", "{}"]
    )
    with pytest.raises(SystemExit) as exited:
        playground.main()
    assert exited.value.code == 2


@pytest.mark.parametrize(
    "path",
    [
        "/app/%2e%2e/%2e%2e/pyproject.toml",
        "/app/%2e%2e%2f%2e%2e%2femulator/playground.py",
        "/client/..%2F..%2F..%2Fpackage.json",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_no_file_outside_the_served_folders(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"[project]" not in response.content and b"root:" not in response.content


def test_built_files_are_served(client: TestClient) -> None:
    response = client.get("/app/app.js")
    assert response.status_code == 200 and response.text == "export {};\n"


def test_an_unbuilt_page_says_how_to_build_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(playground, "BUILT", tmp_path / "missing")
    response = client.get("/")
    assert response.status_code == 503
    assert "make playground" in response.text


def test_unbuilt_files_are_503_in_the_envelope(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(playground, "BUILT", tmp_path / "missing")
    upstreams = nowhere(tmp_path)
    app = playground.app(upstreams)
    response = TestClient(app, base_url="http://127.0.0.1:8788").get("/app/app.js")
    assert response.status_code == 503
    assert "make playground" in response.json()["error"]["message"]


def test_the_emulator_view_reports_an_absent_emulator_as_503(client: TestClient) -> None:
    with client:
        response = client.get("/api/emulator")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
