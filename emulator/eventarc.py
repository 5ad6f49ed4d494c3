"""A local stand-in for an Eventarc Cloud Storage trigger: watches a bucket of the storage emulator
and posts ``google.cloud.storage.object.v1.finalized`` / ``…deleted`` CloudEvents (binary mode,
the object's resource as the JSON body) to a target, with a Google-style OIDC token of the
trigger's service account — what Eventarc delivers to the ingest function on Cloud Run.

A new generation of an object is a ``finalized`` event; new custom metadata on the same generation
a ``metadataUpdated`` one; an object gone, or replaced by a newer generation, is an event for the
generation that went: ``archived`` for a versioned bucket (``--versioned``, as the corpus bucket
is in production), ``deleted`` otherwise — as Cloud Storage emits them. Deliveries are retried
with backoff, as Eventarc retries a non-2xx answer, and given up after a few attempts (logged).

    python -m emulator.eventarc --storage URL --bucket B --target URL --audience AUD \
        --issuer URL --key-dir DIR --email SA [--interval 0.3]
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from emulator.devtokens import ensure_key, mint

log = logging.getLogger("ngx.eventarc")
FINALIZED = "google.cloud.storage.object.v1.finalized"
METADATA_UPDATED = "google.cloud.storage.object.v1.metadataUpdated"
DELETED = "google.cloud.storage.object.v1.deleted"
ARCHIVED = "google.cloud.storage.object.v1.archived"
ATTEMPTS = 5


class Relay:
    """Diffs successive listings of a bucket and delivers what changed as CloudEvents."""

    def __init__(self, args: argparse.Namespace, client: httpx.Client) -> None:
        self.args = args
        self.client = client
        self.known: dict[str, dict[str, Any]] = {}

    def listing(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            params = {"pageToken": token} if token else {}
            url = f"{self.args.storage}/storage/v1/b/{self.args.bucket}/o"
            page = self.client.get(url, params=params, timeout=10).json()
            for item in page.get("items", []):
                found[item["name"]] = item
            token = page.get("nextPageToken")
            if not token:
                return found

    def changes(self, now: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """The events between the last listing and ``now``: new generations, then the ones that
        went (an overwrite's deletion of the old generation comes after the new one's event,
        one of the orders Eventarc may deliver them in)."""
        events: list[tuple[str, dict[str, Any]]] = []
        gone = ARCHIVED if self.args.versioned else DELETED
        for name, current in now.items():
            earlier = self.known.get(name)
            if earlier is None or str(current.get("generation")) != str(earlier.get("generation")):
                events.append((FINALIZED, current))
            elif current.get("metadata") != earlier.get("metadata"):
                events.append((METADATA_UPDATED, current))
        for name, earlier in self.known.items():
            later = now.get(name)
            if later is None or str(later.get("generation")) != str(earlier.get("generation")):
                events.append((gone, earlier))
        return events

    def deliver(self, kind: str, resource: dict[str, Any]) -> bool:
        token = mint(
            ensure_key(Path(self.args.key_dir)),
            user=self.args.email,
            issuer=self.args.issuer,
            audience=self.args.audience,
            ttl_s=600,
            email=self.args.email,
            email_verified=True,
        )
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": kind,
            "ce-source": f"//storage.googleapis.com/projects/_/buckets/{self.args.bucket}",
            "ce-subject": f"objects/{resource['name']}",
            "ce-id": uuid.uuid4().hex,
            "ce-time": datetime.now(UTC).isoformat(),
        }
        delay = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer = self.client.post(self.args.target, json=resource, headers=headers)
                if answer.status_code < 300:
                    return True
                log.warning("delivery refused: %s %s", answer.status_code, answer.text[:200])
            except httpx.HTTPError as exc:
                log.warning("delivery failed (attempt %d): %s", attempt, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        log.error("gave up delivering %s for %s", kind, resource.get("name"))
        return False

    def step(self) -> int:
        """One listing; the number of events delivered."""
        now = self.listing()
        delivered = 0
        for kind, resource in self.changes(now):
            delivered += self.deliver(kind, resource)
        self.known = now
        return delivered


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.eventarc", description=__doc__)
    for name in ("storage", "bucket", "target", "audience", "issuer", "key-dir", "email"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--interval", type=float, default=0.3)
    parser.add_argument(
        "--versioned", action="store_true", help="the bucket keeps versions: archived, not deleted"
    )
    parser.add_argument("--ready-port", type=int, help="answer GET /healthz here once watching")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s eventarc %(message)s")
    with httpx.Client(timeout=60) as client:
        relay = Relay(args, client)
        relay.known = relay.listing()  # what exists at start is not news
        serve_health(args.ready_port)
        while True:
            try:
                relay.step()
            except Exception:  # a stand-in must outlive one bad round
                log.exception("relay round failed")
            time.sleep(args.interval)


def serve_health(port: int | None) -> None:
    """A readiness endpoint on ``port`` (in a thread) so the stack knows the relay watches."""
    if port is None:
        return
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()


if __name__ == "__main__":
    main()
