"""The playground's server: tokens only for its development users, no file outside its folders,
and every failure in the API's error envelope."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from starlette.testclient import TestClient

from emulator import playground


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    upstreams = playground.Upstreams(
        chat_url="http://127.0.0.1:1",
        stream_url="http://127.0.0.1:2",
        vertex_admin="http://127.0.0.1:9",  # nothing listens: the emulator view fails cleanly
        redis_url="redis://127.0.0.1:9/0",
        key_dir=tmp_path,
        issuer="http://127.0.0.1:3",
        audience="ngx-local",
    )
    return TestClient(playground.app(upstreams))


def test_a_development_user_gets_a_token_with_its_scopes(client: TestClient) -> None:
    response = client.post("/api/users/olivia/token")
    assert response.status_code == 200
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "olivia" and claims["scopes"] == ["tools:orders"]
    assert claims["aud"] == "ngx-local"


@pytest.mark.parametrize(
    "user", ["mallory", "__alice__", "alice%00", "a" * 5000, "%E2%80%AE", "..%2F..%2Fetc"]
)
def test_anyone_else_is_404_in_the_envelope(client: TestClient, user: str) -> None:
    response = client.post(f"/api/users/{user}/token")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and len(error["message"]) < 80


def test_tokens_are_minted_by_post_only(client: TestClient) -> None:
    assert client.get("/api/users/alice/token").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/app/../../emulator/playground.py",
        "/app/%2e%2e/%2e%2e/pyproject.toml",
        "/client/..%2F..%2F..%2Fpackage.json",
        "/static/../index.html/../../../etc/passwd",
    ],
)
def test_no_file_outside_the_served_folders(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"[project]" not in response.content and b"root:" not in response.content


def test_an_unbuilt_page_says_how_to_build_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(playground, "BUILT", tmp_path / "missing")
    response = client.get("/")
    assert response.status_code == 503
    assert "make playground" in response.text


def test_the_emulator_view_reports_an_absent_emulator_as_503(client: TestClient) -> None:
    with client:
        response = client.get("/api/emulator")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
