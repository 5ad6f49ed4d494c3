"""A local stand-in for a Pub/Sub push subscription with authentication: pulls the jobs
subscription of the Pub/Sub emulator and posts each message to a target as Pub/Sub pushes it — the
push envelope (``message`` with ``data``, ``attributes``, ``messageId``, ``publishTime``;
``subscription``; ``deliveryAttempt``) with a Google-style OIDC token of the push identity. A 2xx
answer acknowledges the message; anything else hands it back after ``--backoff-s``, and the
emulator's own dead-letter policy moves it to the dead-letter topic after ``--max-attempts``
deliveries, as Pub/Sub does in production.

At start it creates what Terraform creates in production: the topic, its dead-letter topic, the
subscription with the dead-letter policy, and a subscription on the dead-letter topic to read it.

    python -m emulator.pubsub_push --emulator URL --project P --topic T --target URL \
        --audience AUD --issuer URL --key-dir DIR --email SA [--max-attempts 5]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from emulator.devtokens import ensure_key, mint
from emulator.eventarc import serve_health

log = logging.getLogger("ngx.pubsub-push")


def names(project: str, topic: str) -> dict[str, str]:
    """The resource names of a topic's push setup (as Terraform names them in production)."""
    base = f"projects/{project}"
    return {
        "topic": f"{base}/topics/{topic}",
        "dead_topic": f"{base}/topics/{topic}-dead",
        "subscription": f"{base}/subscriptions/{topic}-push",
        "dead_subscription": f"{base}/subscriptions/{topic}-dead",
    }


def create(client: httpx.Client, emulator: str, project: str, topic: str, attempts: int) -> None:
    """Topics and subscriptions, as Terraform makes them (existing ones are kept)."""
    n = names(project, topic)
    for name in (n["topic"], n["dead_topic"]):
        client.put(f"{emulator}/v1/{name}", json={})
    subscription = {
        "topic": n["topic"],
        "ackDeadlineSeconds": 60,
        "deadLetterPolicy": {"deadLetterTopic": n["dead_topic"], "maxDeliveryAttempts": attempts},
    }
    client.put(f"{emulator}/v1/{n['subscription']}", json=subscription)
    client.put(f"{emulator}/v1/{n['dead_subscription']}", json={"topic": n["dead_topic"]})


def create_announcements(client: httpx.Client, emulator: str, project: str, topic: str) -> None:
    """A topic the support team's tools read, with their pull subscription (``{topic}-support``)."""
    base = f"projects/{project}"
    client.put(f"{emulator}/v1/{base}/topics/{topic}", json={})
    subscription = {"topic": f"{base}/topics/{topic}"}
    client.put(f"{emulator}/v1/{base}/subscriptions/{topic}-support", json=subscription)


class Pusher:
    def __init__(self, args: argparse.Namespace, client: httpx.Client) -> None:
        self.args = args
        self.client = client
        self.subscription = names(args.project, args.topic)["subscription"]

    def _token(self) -> str:
        return mint(
            ensure_key(Path(self.args.key_dir)),
            user=self.args.email,
            issuer=self.args.issuer,
            audience=self.args.audience,
            ttl_s=600,
            email=self.args.email,
            email_verified=True,
        )

    def step(self) -> int:
        """Pull what is waiting (up to 10) and push each; how many were pulled."""
        url = f"{self.args.emulator}/v1/{self.subscription}"
        # No long poll: a pull the emulator holds open can time out here after it has handed
        # messages to it, which then wait out their ack deadline before coming back.
        pulled = {"maxMessages": 10, "returnImmediately": True}
        found = self.client.post(f"{url}:pull", json=pulled, timeout=10).json()
        received: list[dict[str, Any]] = found.get("receivedMessages", [])
        for item in received:
            envelope = {
                "message": item["message"],
                "subscription": self.subscription,
                "deliveryAttempt": item.get("deliveryAttempt", 1),
            }
            headers = {"authorization": f"Bearer {self._token()}"}
            try:
                answer = self.client.post(self.args.target, json=envelope, headers=headers)
                ok = 200 <= answer.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                self.client.post(f"{url}:acknowledge", json={"ackIds": [item["ackId"]]})
            else:
                log.info(
                    "push refused; redelivering",
                    extra={"attempt": envelope["deliveryAttempt"]},
                )
                self.client.post(
                    f"{url}:modifyAckDeadline",
                    json={"ackIds": [item["ackId"]], "ackDeadlineSeconds": self.args.backoff_s},
                )
        return len(received)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.pubsub_push", description=__doc__)
    for name in (
        "emulator",
        "project",
        "topic",
        "target",
        "audience",
        "issuer",
        "key-dir",
        "email",
    ):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument(
        "--announce", action="append", default=[], help="also create this topic (pull only)"
    )
    parser.add_argument("--backoff-s", type=int, default=1, help="before a refused redelivery")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--ready-port", type=int, help="answer GET /healthz here once pushing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pubsub-push %(message)s")
    with httpx.Client(timeout=60) as client:
        deadline = time.monotonic() + 120  # the emulator (a JVM) starts beside this process
        while True:
            try:
                create(client, args.emulator, args.project, args.topic, args.max_attempts)
                for topic in args.announce:
                    create_announcements(client, args.emulator, args.project, topic)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)
        pusher = Pusher(args, client)
        serve_health(args.ready_port)
        while True:
            try:
                if pusher.step() == 0:
                    time.sleep(args.interval)
            except Exception:  # a stand-in must outlive one bad round
                log.exception("push round failed")
                time.sleep(1.0)


if __name__ == "__main__":
    main()
