"""Settings: local defaults work, deployed environments never inherit emulator addresses, and a
bad value is reported with the variable's name."""

from __future__ import annotations

import pytest

from shared.errors import SettingsError
from shared.settings import load_settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIRESTORE_EMULATOR_HOST", "NGX_VERTEX_ENDPOINT", "NGX_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.vertex_endpoint == "127.0.0.1:8790"
    assert settings.firestore_emulator_host == "127.0.0.1:8686"
    assert settings.redis_url.startswith("redis://127.0.0.1:")


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGX_MAX_BODY_BYTES", "lots")
    with pytest.raises(SettingsError, match=r"NGX_MAX_BODY_BYTES='lots'"):
        load_settings()


def test_bad_redis_url_is_rejected() -> None:
    with pytest.raises(SettingsError, match="NGX_REDIS_URL"):
        load_settings(redis_url="http://example")


def test_deployed_environment_drops_emulator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGX_ENVIRONMENT", "prod")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    settings = load_settings()
    assert settings.vertex_endpoint is None
    assert settings.firestore_emulator_host is None


def test_empty_endpoint_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGX_VERTEX_ENDPOINT", "")
    assert load_settings().vertex_endpoint is None


def test_model_prefix_uses_project_and_region() -> None:
    settings = load_settings(project_id="p1", vertex_location="europe-west4")
    assert settings.vertex_model_prefix == (
        "projects/p1/locations/europe-west4/publishers/google/models/"
    )


def test_an_idempotency_lease_shorter_than_a_request_is_refused() -> None:
    with pytest.raises(SettingsError, match="idempotency_lease_s must exceed"):
        load_settings(idempotency_lease_s=389, vertex_deadline_s=30)  # 9 calls, 60 s tools, 60 s
    assert load_settings(idempotency_lease_s=391, vertex_deadline_s=30).idempotency_lease_s == 391
    with pytest.raises(SettingsError, match="here 420 s"):
        load_settings(idempotency_lease_s=400, vertex_deadline_s=30, agent_max_steps=6)
