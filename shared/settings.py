"""The runtime's settings: what a deployed function reads, validated once per process.

Every knob has a default that works with the local stack (`agentctl stack up`); production sets them
through Cloud Run environment variables and Secret Manager. Variables are prefixed ``NGX_``.
Operations (`ops.settings`) and the local stack (`emulator.settings`) extend this class with what
only they read, so a function's settings never carry operator or development knobs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import SettingsError

FIRESTORE_RETRY_S = 60.0  # the Firestore client's default retry deadline for a call
LOCAL_HOST = "127.0.0.1"
# Settings whose defaults point at the local stack; deployed environments must set them explicitly.
LOCAL_ONLY = ("vertex_endpoint", "firestore_emulator_host")


class Settings(BaseSettings):
    """Runtime configuration, read once per process from the environment and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="NGX_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    # Identity of the deployment.
    project_id: str = Field("ngx-local", min_length=1)
    environment: Literal["local", "test", "staging", "prod"] = "local"
    service_name: str = "ngx"

    # Vertex AI.
    vertex_location: str = "us-central1"
    vertex_endpoint: str | None = Field(
        f"{LOCAL_HOST}:8790",
        description="host:port of an insecure gRPC endpoint (the emulator); unset in production",
    )
    default_model: str = "gemini-2.5-flash"
    max_output_tokens: int = Field(1024, ge=1, le=65536)
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    system_instruction: str = "You are a concise, helpful assistant."
    # Routing: a request tier names a chain of models; the next one serves when one is down.
    model_tiers: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "fast": ["gemini-2.5-flash", "gemini-2.0-flash-001"],
            "quality": ["gemini-2.5-pro", "gemini-2.5-flash"],
        }
    )
    # Estimated prices, USD per million tokens: {"model": {"input": x, "output": y}}.
    model_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "gemini-2.5-flash": {"input": 0.30, "output": 2.50},
            "gemini-2.5-pro": {"input": 1.25, "output": 10.00},
            "gemini-2.0-flash-001": {"input": 0.15, "output": 0.60},
        }
    )

    # Resilience: per-attempt timeout, overall deadline, retries, breaker.
    vertex_attempt_timeout_s: float = Field(15.0, gt=0)
    vertex_deadline_s: float = Field(30.0, gt=0)
    retry_max_attempts: int = Field(5, ge=1, le=10)
    retry_initial_s: float = Field(0.1, gt=0)
    retry_max_delay_s: float = Field(2.0, gt=0)
    retry_multiplier: float = Field(2.0, ge=1.0)
    retry_budget_ratio: float = Field(0.5, ge=0.0, le=5.0)
    retry_budget_min_per_s: float = Field(10.0, ge=0.0)
    breaker_window_s: float = Field(10.0, gt=0)
    breaker_min_calls: int = Field(10, ge=1)
    breaker_failure_ratio: float = Field(0.5, gt=0.0, le=1.0)
    breaker_open_s: float = Field(5.0, gt=0)
    breaker_consecutive_failures: int = Field(
        5, ge=1, description="failed calls in a row that open a model's breaker at any traffic"
    )

    # Response cache (Memorystore).
    cache_enabled: bool = True
    cache_max_temperature: float = Field(0.4, ge=0.0)
    cache_default_ttl_s: int = Field(3600, ge=1)
    cache_compress_min_bytes: int = Field(1024, ge=0)
    cache_max_entry_bytes: int = Field(256 * 1024, ge=1024)
    cache_policy_reload_s: float = Field(30.0, gt=0)
    # Cache maintenance: how TTLs are recommended from observed reuse.
    cache_reuse_horizon_s: int = Field(7 * 86400, ge=60, description="how long reuse is tracked")
    cache_reuse_coverage: float = Field(0.9, gt=0, le=1, description="share of reuses a TTL covers")
    cache_min_reuses: int = Field(20, ge=1, description="fewer observed reuses: keep the TTL")
    cache_min_ttl_s: int = Field(60, ge=1)
    cache_max_ttl_s: int = Field(7 * 86400, ge=1)
    cache_memory_budget_bytes: int | None = Field(
        None, ge=1, description="default: 80% of Memorystore's maxmemory"
    )
    memorystore_instance: str | None = Field(
        None, description="projects/P/locations/L/instances/I: eviction policy managed when set"
    )
    memorystore_endpoint: str | None = Field(
        None, description="a local Memorystore API endpoint (tests); default: Google's"
    )
    redis_timeout_s: float = Field(0.1, gt=0, description="per Redis operation; then no cache")
    redis_backoff_s: float = Field(2.0, ge=0, description="skip Redis this long after a failure")
    singleflight_wait_s: float = Field(20.0, gt=0)
    singleflight_lock_s: float = Field(30.0, gt=0)

    # The agent: tools (a TOML file, see docs/agent.md) and the bounds of its loop.
    tools_file: str | None = Field(None, description="TOML file declaring the tools")
    tool_private_hosts: list[str] = Field(
        default_factory=list,
        description="host:port pairs on private addresses tools may reach (local and test only)",
    )
    agent_max_steps: int = Field(5, ge=1, le=20, description="rounds of tool calls per answer")
    agent_deadline_s: float = Field(60.0, gt=0, le=600, description="for all rounds together")
    agent_tool_timeout_s: float = Field(10.0, gt=0, le=120, description="a tool's default")
    agent_max_calls_per_step: int = Field(8, ge=1, le=64)
    confirmation_ttl_s: int = Field(
        900, ge=30, le=7 * 86400, description="how long a proposed action waits for approval"
    )
    agent_tool_result_tokens: int = Field(
        2000, ge=64, le=100_000, description="a tool result beyond this is cut before the model"
    )

    # Embeddings (retrieval and the semantic cache): a Vertex AI text-embedding model.
    embedding_model: str = "text-embedding-005"
    embedding_dimensions: int = Field(256, ge=8, le=2048)
    embedding_batch_texts: int = Field(250, ge=1, le=250, description="the API's limit")
    embedding_batch_tokens: int = Field(
        15_000, ge=100, le=20_000, description="estimated tokens per request (API: 20,000)"
    )
    embedding_cache_ttl_s: int = Field(30 * 86400, ge=60)

    # Retrieval in the chat: `auto` retrieves before the model call (a request may choose).
    retrieval_default: Literal["auto", "tool", "off"] = "off"
    retrieval_top_k: int = Field(4, ge=1, le=20)
    retrieval_min_similarity: float = Field(
        0.2,
        ge=-1,
        le=1,
        description="cosine; below it a chunk is never injected (calibrate per embedding model)",
    )
    retrieval_context_tokens: int = Field(1500, ge=100, le=30_000)
    retrieval_min_term_coverage: float = Field(
        0.6,
        gt=0,
        le=1,
        description="hybrid: a chunk holding this IDF-weighted share of the question's terms "
        "is kept even below the similarity floor",
    )
    retrieval_mode: Literal["hybrid", "vector", "lexical"] = Field(
        "hybrid", description="hybrid fuses BM25 and vector results by reciprocal rank"
    )
    retrieval_candidates: int = Field(
        20, ge=1, le=200, description="results taken from each of BM25 and vector search"
    )
    retrieval_rrf_k: int = Field(60, ge=1, le=1000, description="reciprocal rank fusion's k")
    retrieval_mmr_lambda: float = Field(
        0.7, ge=0, le=1, description="MMR: 1 ranks by relevance only, lower favours diversity"
    )
    retrieval_recency_half_life_days: float = Field(
        0, ge=0, le=3650, description="0: no recency boost; else a chunk this old counts half"
    )
    retrieval_recency_weight: float = Field(0.2, ge=0, le=1)
    retrieval_cache_ttl_s: int = Field(300, ge=0, le=86400, description="0: not cached")
    # The semantic answer cache: a context-free question this close (cosine of the embeddings)
    # to one answered with the same options gets that answer. Calibrate the floor per model.
    semantic_cache_enabled: bool = False
    semantic_cache_min_similarity: float = Field(0.95, ge=0.5, le=1.0)
    semantic_cache_ttl_s: int = Field(86400, ge=60, le=30 * 86400)
    semantic_cache_max_entries: int = Field(
        1000, ge=10, le=10_000, description="answers kept per bucket; the oldest go first"
    )
    # The vector backend: Firestore's find_nearest, or Vertex AI Vector Search (docs/retrieval.md
    # says when to switch); its ScaNN knobs, 0 leaving each at the index's default.
    vector_backend: Literal["firestore", "vertex"] = "firestore"
    vector_search_endpoint: str | None = Field(
        None, description="the index endpoint's public domain (…vdb.vertexai.goog)"
    )
    vector_search_index_endpoint: str | None = Field(
        None, description="projects/…/locations/…/indexEndpoints/…"
    )
    vector_search_deployed_index_id: str | None = None
    vector_search_index: str | None = Field(
        None, description="projects/…/locations/…/indexes/… (streaming upserts)"
    )
    vector_search_approximate_neighbors: int = Field(
        0, ge=0, le=10_000, description="candidates gathered before exact re-scoring"
    )
    vector_search_leaf_fraction: float = Field(
        0.0, ge=0, le=1, description="share of the tree's leaves searched (efSearch / nprobe)"
    )
    vector_search_grpc: str | None = Field(None, description="host:port of a local fake (tests)")
    # Re-ranking of the fused candidates through Vertex AI's ranking API (off by default).
    retrieval_rerank: bool = False
    retrieval_rerank_candidates: int = Field(20, ge=2, le=200)
    ranking_model: str = "semantic-ranker-default-004"
    ranking_grpc: str | None = Field(None, description="host:port of a local fake (tests)")
    corpus_refresh_s: float = Field(
        5.0, ge=0.1, le=300, description="how long an instance trusts the corpus version it read"
    )
    corpus_index_sink: str | None = Field(
        None,
        description="gs://bucket/prefix or file:///dir holding the lexical (BM25) indexes; "
        "unset: retrieval is vector only",
    )

    # Routing by confidence (tier auto): the fast tier answers; the quality tier takes over an
    # answer below this average log-probability, cut short, blocked or breaking its schema.
    routing_fast_tier: str = "fast"
    routing_quality_tier: str = "quality"
    routing_min_avg_logprobs: float = Field(-1.0, le=0)

    # Accounting.
    daily_token_budget: int = Field(2_000_000, ge=0, description="per subject and UTC day; 0: none")
    daily_token_budget_tiers: dict[str, int] = Field(
        default_factory=dict,
        description="per tier (an API key's, or an ID token's `tier` claim): tokens per day; "
        "a tier not listed gets daily_token_budget",
    )
    budget_when_unavailable: Literal["open", "closed"] = Field(
        "open",
        description="Memorystore down: open lets calls through uncounted, closed refuses (503)",
    )
    prompt_history_tokens: int = Field(1500, ge=0)
    summary_max_tokens: int = Field(200, ge=16)

    # Auth: Firebase Auth / Identity Platform ID tokens by default, or API keys.
    auth_issuer: str | None = Field(None, description="default: Firebase's, for project_id")
    auth_audience: str | None = Field(None, description="default: project_id")
    auth_jwks_url: str = (
        "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
    )
    auth_clock_skew_s: int = Field(60, ge=0, le=600)
    auth_jwks_ttl_s: int = Field(3600, ge=10)
    auth_token_cache_size: int = Field(
        4096, ge=0, le=1_000_000, description="verified tokens kept per process; 0 turns it off"
    )
    api_key_cache_s: int = Field(60, ge=0)

    # Rate limits: requests per minute, per API key or user (by tier) and per client IP.
    rate_limit_tiers: dict[str, int] = Field(
        default_factory=lambda: {"free": 20, "standard": 120, "premium": 600}
    )
    rate_limit_default_tier: str = "standard"
    rate_limit_ip_per_minute: int = Field(600, ge=1)
    trusted_proxy_hops: int = Field(
        1,
        ge=0,
        le=5,
        description="proxies that append to X-Forwarded-For: Cloud Run's front end is one; "
        "a load balancer before it makes two; 0 ignores the header",
    )

    # Streams: heartbeat comments, how long an abandoned stream waits for a resume, event buffer.
    stream_heartbeat_s: float = Field(15.0, gt=0)
    stream_resume_grace_s: float = Field(0.5, gt=0, le=30)
    stream_buffer_ttl_s: int = Field(600, ge=10)

    # WebSocket sessions (`shared.sessions`): time limits and the per-connection bounds.
    session_auth_timeout_s: float = Field(
        10.0, gt=0, le=60, description="a connection must authenticate within this long"
    )
    session_idle_s: float = Field(
        300.0, gt=0, description="a session with no message and no answer running is closed"
    )
    session_max_s: float = Field(
        3480.0,
        gt=0,
        description="a session is asked to reconnect after this long: below the service's "
        "request timeout (3,600 s), with session_drain_s to spare",
    )
    session_drain_s: float = Field(
        60.0, ge=0, description="after the reconnect hint, answers running may finish this long"
    )
    session_send_queue: int = Field(
        512, ge=8, le=100_000, description="events waiting for a slow client before it is closed"
    )
    session_max_streams: int = Field(4, ge=1, le=64, description="answers running at once")

    # Idempotency records: how long they are kept, how long a replay waits for the first request.
    idempotency_ttl_h: int = Field(24, ge=1, le=24 * 30)
    idempotency_wait_s: float = Field(30.0, gt=0)
    idempotency_lease_s: float = Field(
        600.0, ge=1, description="a pending first request older than this may be taken over"
    )

    # CORS: browser origins allowed to call the API.
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])

    # Traces: where spans go.
    trace_exporter: Literal["none", "console", "otlp", "gcp-trace"] = "none"
    trace_export_delay_ms: int = Field(5000, ge=1)

    # Firestore: the official emulator locally (the client reads FIRESTORE_EMULATOR_HOST itself).
    firestore_database: str = "(default)"
    firestore_emulator_host: str | None = Field(
        f"{LOCAL_HOST}:8686",
        validation_alias=AliasChoices("FIRESTORE_EMULATOR_HOST", "NGX_FIRESTORE_EMULATOR_HOST"),
    )

    # Memorystore (Redis protocol).
    redis_url: str = f"redis://{LOCAL_HOST}:6390/0"
    redis_iam_auth: bool = Field(
        False, description="AUTH with the service account's access token (Memorystore IAM auth)"
    )
    redis_tls_ca: str | None = Field(
        None, description="PEM of the CA that signs the server's certificate (rediss:// URLs)"
    )

    # Request limits.
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Responses: a JSON body of at least this many bytes is gzip-compressed for a client that
    # accepts it (`shared.compression`). Below about 1 kB the body fits one packet either way, so
    # a mobile client would wait no less, and the gzip framing (18 bytes) and CPU are all cost.
    gzip_min_bytes: int = Field(1024, ge=0, description="smallest JSON answer gzip-compressed")
    max_message_chars: int = Field(16_000, ge=1)
    history_messages: int = Field(20, ge=0, le=200)
    # 0 keeps conversations; N: Firestore's TTL deletes them N days after their last message.
    conversation_retention_days: int = Field(0, ge=0, le=3650)

    # Logging: prompt and answer text are never logged; personal data is redacted from every line.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    subject_key: SecretStr | None = Field(
        None,
        description="key of subjects' pseudonyms in logs and the erasure ledger "
        "(default: the project id; set once, never rotate)",
    )
    redact_patterns: list[str] = Field(
        default_factory=list, description="further regular expressions redacted from logs"
    )
    redact_prompts: bool = Field(
        False, description="also redact personal data from the text sent to the model"
    )

    # Callers of the scheduled functions (cache-maintenance, backup): Google-signed OIDC tokens.
    invoker_issuer: str = "https://accounts.google.com"
    invoker_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    invoker_audience: str | None = Field(None, description="the service URL Scheduler signs for")
    scheduler_service_account: str | None = Field(None, description="Cloud Scheduler's identity")
    operator_service_accounts: list[str] = Field(
        default_factory=list, description="identities that may also restore backups"
    )
    event_service_account: str | None = Field(
        None, description="the Eventarc trigger's identity (the ingest function's caller)"
    )
    ingest_buckets: list[str] = Field(
        default_factory=list, description="Cloud Storage buckets whose objects ingest takes"
    )
    push_service_account: str | None = Field(
        None, description="the identity Pub/Sub pushes the job queue with (the worker's caller)"
    )
    invoker_auth_bypass: bool = Field(False, description="local stack and tests only")

    # Cloud Monitoring (business metrics written by reports; canary reads by agentctl).
    monitoring_endpoint: str | None = Field(
        None, description="a local Cloud Monitoring API endpoint (tests); default: Google's"
    )

    # Jobs: heavy work queued on Pub/Sub and run by the worker function.
    jobs_topic: str = Field("ngx-jobs", pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
    handoffs_topic: str | None = Field(
        "ngx-handoffs",
        pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$",
        description="where hand-off requests are announced to the support team's tools",
    )
    handoff_after_unsure: int = Field(
        2,
        ge=0,
        le=20,
        description="answers in a row the agent was unsure of (tier auto "
        "escalated them) before a person is asked to join; 0: never",
    )
    job_lease_s: float = Field(
        900.0,
        ge=5,
        le=3600,
        description="a run's hold on its job: longer than the worker's request timeout (600 s)",
    )
    job_max_attempts: int = Field(
        5, ge=1, le=100, description="deliveries before a job fails (the dead-letter policy's)"
    )
    ingest_inline_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="a larger upload is ingested by the worker as a job, not in the event",
    )
    export_sink: str | None = Field(
        None, description="where data exports are written: gs://bucket/prefix or file:///dir"
    )
    export_url_ttl_s: int = Field(
        900, ge=60, le=604_800, description="how long an export's download link works"
    )

    # Logical Firestore backups.
    backup_sink: str | None = Field(None, description="gs://bucket/prefix or file:///dir")
    backup_sinks: dict[str, str] = Field(
        default_factory=dict,
        description="further named destinations a request may choose by name (never by URL)",
    )
    backup_collections: list[str] = Field(
        default_factory=lambda: ["conversations", "api_keys", "config", "usage", "erasures"]
    )
    backup_shard_documents: int = Field(5000, ge=1, le=1_000_000)
    backup_keep_last: int = Field(7, ge=1)
    backup_keep_days: int = Field(30, ge=0)
    restore_concurrency: int = Field(4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _no_local_defaults_when_deployed(cls, data: Any) -> Any:
        """In staging and prod, emulator addresses are never taken from local defaults."""
        if isinstance(data, dict) and data.get("environment") in ("staging", "prod"):
            for name in LOCAL_ONLY:
                data.setdefault(name, None)
        return data

    @field_validator(
        "vertex_endpoint", "firestore_emulator_host", "memorystore_endpoint", "monitoring_endpoint"
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("backup_sinks")
    @classmethod
    def _sink_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9-]{0,31}\Z", name) or name == "default":
                raise ValueError(f"{name!r} is not a destination name (a-z, 0-9, -; not default)")
        return value

    @field_validator("backup_collections")
    @classmethod
    def _collection_ids(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "/" in name or name.startswith("__"):
                raise ValueError(f"{name!r} is not a top-level collection id")
        return value

    @model_validator(mode="after")
    def _invoker_rules(self) -> Settings:
        if self.invoker_auth_bypass and self.environment not in ("local", "test"):
            raise ValueError(
                "invoker_auth_bypass is only allowed in the local and test environments"
            )
        if self.tool_private_hosts and self.environment not in ("local", "test"):
            raise ValueError(
                "tool_private_hosts is only allowed in the local and test environments: "
                "deployed tools reach public addresses only"
            )
        if self.scheduler_service_account and (
            self.scheduler_service_account in self.operator_service_accounts
        ):
            raise ValueError(
                "operator_service_accounts must not include scheduler_service_account: "
                "restores are never reachable with the scheduler's identity"
            )
        return self

    @model_validator(mode="after")
    def _vector_search_is_complete(self) -> Settings:
        if self.vector_backend == "vertex":
            missing = [
                name
                for name in (
                    "vector_search_index_endpoint",
                    "vector_search_deployed_index_id",
                    "vector_search_index",
                )
                if not getattr(self, name)
            ]
            if not self.vector_search_endpoint and not self.vector_search_grpc:
                missing.append("vector_search_endpoint")
            if missing:
                raise ValueError(f"vector_backend vertex needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_request(self) -> Settings:
        # A chat's model calls: the summary, one per round of tool calls, the answer after the
        # last bound, an escalation and a repair; its tools within the agent's deadline; and
        # Firestore's own retries.
        calls = self.agent_max_steps + 4
        longest = calls * self.vertex_deadline_s + self.agent_deadline_s + FIRESTORE_RETRY_S
        if self.idempotency_lease_s <= longest:
            raise ValueError(
                f"idempotency_lease_s must exceed (agent_max_steps + 4) × vertex_deadline_s + "
                f"agent_deadline_s + {FIRESTORE_RETRY_S:.0f} s (here {longest:.0f} s): a first "
                "request still running must not be taken over"
            )
        return self

    @model_validator(mode="after")
    def _tokens_travel_encrypted(self) -> Settings:
        if self.redis_iam_auth and not self.redis_url.startswith("rediss://"):
            raise ValueError(
                "NGX_REDIS_IAM_AUTH needs a rediss:// NGX_REDIS_URL: the access token is the "
                "password and must not cross the network in clear"
            )
        return self

    @model_validator(mode="after")
    def _tls_has_its_authority(self) -> Settings:
        if self.redis_url.startswith("rediss://") and not self.redis_tls_ca:
            raise ValueError(
                "a rediss:// NGX_REDIS_URL needs NGX_REDIS_TLS_CA (the instance's CA, PEM): "
                "the server is verified against it"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @property
    def token_issuer(self) -> str:
        return self.auth_issuer or f"https://securetoken.google.com/{self.project_id}"

    @property
    def token_audience(self) -> str:
        return self.auth_audience or self.project_id

    @property
    def vertex_model_prefix(self) -> str:
        """Resource prefix for publisher models in this project and region."""
        return (
            f"projects/{self.project_id}/locations/{self.vertex_location}/publishers/google/models/"
        )


SettingsT = TypeVar("SettingsT", bound=Settings)


def parse_settings(kind: type[SettingsT], overrides: dict[str, object]) -> SettingsT:
    """Build ``kind`` from the environment and ``overrides``; a validation failure becomes one line
    that names each bad setting."""
    try:
        return kind(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if not field:  # a rule across settings: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            problems.append(f"NGX_{field.upper()}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


def load_settings(**overrides: object) -> Settings:
    """The runtime settings with ``overrides`` (tests, tools)."""
    return parse_settings(Settings, overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return load_settings()
