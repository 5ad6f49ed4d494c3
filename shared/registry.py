"""The deployed functions, described once: name, who may call it, routes, probes and local port.

Everything that lists the functions reads this table: each function's router (`web.Router.serve`
binds the handlers of ``functions/<name>/main.py`` to these routes), the local stack, the OpenAPI
build, and the tests that hold the Dockerfile, ``cloudbuild.yaml`` and Terraform to it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

# Who calls it: anyone, Cloud Scheduler, Eventarc, a Pub/Sub push subscription.
Access = Literal["public", "scheduler", "events", "push"]


@dataclass(frozen=True)
class RouteSpec:
    """One route: method, path template, the scope a caller needs (``None``: public) and the name
    of the handler in the function's ``main.py`` (also the key of its OpenAPI documentation,
    `shared.openapi.OPERATIONS`, which names its public ``operationId``)."""

    method: str
    path: str
    operation: str
    scope: str | None = None
    # Rate limits checked with the request's first Redis round trip (`shared.admission`): for a
    # route whose first one is a cache lookup.
    deferred_limits: bool = False
    # A WebSocket endpoint (the handler takes a `starlette.websockets.WebSocket`); a plain HTTP
    # request to its path gets 426.
    websocket: bool = False


@dataclass(frozen=True)
class Probes:
    """Paths Cloud Run (and the local stack) probe: start-up and liveness (the process serves),
    and readiness (its dependencies answer now)."""

    startup: str = "/healthz"
    liveness: str = "/healthz"
    readiness: str = "/readyz"


HEALTH = RouteSpec("GET", "/healthz", "healthz")
READY = RouteSpec("GET", "/readyz", "readyz")


@dataclass(frozen=True)
class FunctionSpec:
    """One deployed function: a Cloud Run service built from the one image."""

    name: str  # FUNCTION_TARGET and folder: cache_maintenance
    access: Access
    routes: tuple[RouteSpec, ...]
    local_port: int
    summary: str
    probes: Probes = field(default_factory=Probes)

    @property
    def service(self) -> str:
        """The name in Terraform, Cloud Run and on the command line: ``cache-maintenance``."""
        return self.name.replace("_", "-")

    @property
    def source(self) -> str:
        """The module functions-framework loads, relative to the repository (and image) root."""
        return f"functions/{self.name}/main.py"


CHAT = FunctionSpec(
    "chat",
    "public",
    (
        RouteSpec("POST", "/v1/chat", "post_chat", "chat", deferred_limits=True),
        RouteSpec("GET", "/v1/conversations", "list_conversations", "conversations"),
        RouteSpec(
            "GET", "/v1/conversations/{conversation_id}", "get_conversation", "conversations"
        ),
        RouteSpec(
            "DELETE", "/v1/conversations/{conversation_id}", "delete_conversation", "conversations"
        ),
        RouteSpec(
            "POST",
            "/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
            "post_feedback",
            "conversations",
        ),
        RouteSpec("POST", "/v1/confirmations/{confirmation_id}", "post_confirmation", "chat"),
        RouteSpec("DELETE", "/v1/me", "erase_me", "account"),
        RouteSpec("POST", "/v1/me/export", "export_me", "account"),
        RouteSpec("GET", "/v1/jobs/{job_id}", "get_job", "account"),
        RouteSpec("GET", "/v1/handoffs", "list_handoffs", "handoffs"),
        RouteSpec("POST", "/v1/handoffs/{conversation_id}/messages", "reply_handoff", "handoffs"),
        RouteSpec("POST", "/v1/handoffs/{conversation_id}/close", "close_handoff", "handoffs"),
        HEALTH,
        READY,
    ),
    local_port=8081,
    summary="POST /v1/chat, confirmations of proposed actions, the conversation reads, "
    "deletes and feedback on answers, DELETE /v1/me, exports and jobs, and hand-offs for "
    "support staff, as JSON",
)
STREAM = FunctionSpec(
    "stream",
    "public",
    (
        RouteSpec("POST", "/v1/chat:stream", "post_stream", "chat"),
        RouteSpec("GET", "/v1/sessions", "open_session", "chat", websocket=True),
        HEALTH,
        READY,
    ),
    local_port=8082,
    summary="POST /v1/chat:stream, answers as Server-Sent Events, and WebSocket sessions at "
    "/v1/sessions",
)


def scheduled(name: str, local_port: int, summary: str) -> FunctionSpec:
    """A scheduler-only function: Cloud Scheduler (or an operator) posts a JSON action to ``/``."""
    routes = (RouteSpec("POST", "/", "post_action"), HEALTH, READY)
    return FunctionSpec(name, "scheduler", routes, local_port, summary)


CACHE_MAINTENANCE = scheduled(
    "cache_maintenance", 8083, "tunes cache TTLs, invalidates, reports; called by Cloud Scheduler"
)
BACKUP = scheduled("backup", 8084, "logical Firestore backups: run, verify, prune, list, restore")
REPORTS = scheduled(
    "reports", 8087, "business metrics per day (resolution rate, CSAT, deflection) to Monitoring"
)

INGEST = FunctionSpec(
    "ingest",
    "events",
    (RouteSpec("POST", "/", "post_event"), HEALTH, READY),
    local_port=8085,
    summary="Cloud Storage object events (Eventarc CloudEvents) into the retrieval corpus",
)

WORKER = FunctionSpec(
    "worker",
    "push",
    (RouteSpec("POST", "/", "post_message"), HEALTH, READY),
    local_port=8086,
    summary="jobs from the Pub/Sub queue (push deliveries): exports of a user's data",
)

FUNCTIONS: tuple[FunctionSpec, ...] = (
    CHAT,
    STREAM,
    CACHE_MAINTENANCE,
    BACKUP,
    INGEST,
    WORKER,
    REPORTS,
)


def function(name: str) -> FunctionSpec:
    """The function called ``name``: ``cache_maintenance`` and ``cache-maintenance`` both work."""
    for spec in FUNCTIONS:
        if name in (spec.name, spec.service):
            return spec
    raise KeyError(f"no deployed function named {name!r}")


def launch_command(
    spec: FunctionSpec, host: str, port: int, python: str | None = None
) -> list[str]:
    """How every process of a function starts, in the image, the local stack and the tests."""
    return [
        python or sys.executable,
        "-m",
        "functions",
        "--target",
        spec.name,
        "--host",
        host,
        "--port",
        str(port),
    ]
