"""Operations settings: the runtime's plus what only `agentctl` reads (Cloud Run, Monitoring).

The same ``NGX_`` environment variables; a deployed function never builds this class, so none of
these knobs reaches its process.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator

from shared.settings import Settings, parse_settings


class OpsSettings(Settings):
    """Settings of `agentctl` commands (canary, migrations, preflight, load tests)."""

    # Canary releases (`agentctl canary`): the Cloud Run Admin API and Cloud Monitoring.
    region: str = Field("us-central1", min_length=1, description="Cloud Run region of the services")
    run_endpoint: str | None = Field(
        None, description="a local Cloud Run Admin API endpoint (tests); default: Google's"
    )

    # Canary gates relative to the stable revision (defaults of `agentctl canary start`; the
    # absolute gates are its flags). See docs/operations.md, "Canary gates".
    canary_max_error_ratio_margin: float = Field(
        0.01, ge=0, le=1, description="candidate's 5xx ratio may exceed stable's by this much"
    )
    canary_max_p95_ratio: float = Field(
        1.5, ge=1, description="candidate's p95 may be at most this factor of stable's"
    )
    canary_max_window_s: float = Field(
        1800.0, gt=0, description="a check with too few requests widens its window up to this"
    )

    # Load tests (`agentctl loadtest --url`): the caller's API key, from Secret Manager in the job.
    loadtest_api_key: SecretStr | None = Field(
        None, description="API key the load test presents when neither --token nor --api-key"
    )

    # Data migrations (`agentctl migrate`).
    migration_batch_size: int = Field(
        200, ge=1, le=498, description="documents per atomic step (the commit also holds 2 writes)"
    )
    migration_lease_s: float = Field(
        60.0, ge=1, le=3600, description="a run that stalls this long loses the lease"
    )

    @field_validator("run_endpoint")
    @classmethod
    def _empty_endpoint_is_unset(cls, value: str | None) -> str | None:
        return value or None


def load_ops_settings(**overrides: object) -> OpsSettings:
    """Operations settings with ``overrides`` (tests, tools)."""
    return parse_settings(OpsSettings, overrides)


@lru_cache(maxsize=1)
def get_ops_settings() -> OpsSettings:
    """The process-wide operations settings, validated on first use."""
    return load_ops_settings()
