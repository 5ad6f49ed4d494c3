"""``agentctl report --since 7d``: business metrics per day — conversations, resolution rate,
CSAT and deflection rate — as a table (or ``--json``), and a PNG chart (``--png``).

Days are computed from Firestore as the reports function computes them (`shared.business`), so
the report is exact whether or not the nightly job has run yet; today's row is partial.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ops.settings import get_ops_settings
from shared import errors

MAX_DAYS = 400
SINCE = re.compile(r"^([0-9]{1,3})d\Z")  # ASCII digits only


def add_commands(commands: Any) -> None:
    report = commands.add_parser("report", help="business metrics per day")
    report.add_argument("--since", default="7d", help="how far back: Nd (default 7d)")
    report.add_argument("--json", action="store_true", help="the days as JSON")
    report.add_argument("--png", type=Path, help="also draw the rates to this PNG file")
    report.set_defaults(run=main)


def days_since(since: str, today: date) -> list[date]:
    """The days from ``since`` ago through today, oldest first."""
    found = SINCE.match(since)
    if found is None or not 1 <= int(found.group(1)) <= MAX_DAYS:
        raise errors.ValidationFailed(
            f"--since must be 1d to {MAX_DAYS}d, got {since[:20]!r}",
            details=[{"field": "since", "issue": "invalid"}],
        )
    count = int(found.group(1))
    return [today - timedelta(days=n) for n in range(count, -1, -1)]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("day".ljust(10), "convs".rjust(5), "resolution".rjust(10), "CSAT".rjust(5))
    lines = ["  ".join((*head, "ratings".rjust(7), "deflection".rjust(10)))]
    for row in rows:
        csat = "—" if row["csat"] is None else f"{row['csat']:.2f}"
        lines.append(
            f"{row['day']:10}  {row['conversations']:>5}  {_percent(row['resolution_rate']):>10}  "
            f"{csat:>5}  {row['ratings']:>7}  {_percent(row['deflection_rate']):>10}"
        )
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [row["day"][5:] for row in rows]
    figure, (rates, csat) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, label in (("resolution_rate", "resolution rate"), ("deflection_rate", "deflection")):
        rates.plot(days, [row[key] for row in rows], marker="o", label=label)
    rates.set_ylim(0, 1.05)
    rates.set_ylabel("share of conversations")
    rates.legend(loc="lower left")
    csat.plot(days, [row["csat"] for row in rows], marker="o", color="tab:green")
    csat.set_ylim(1, 5.2)
    csat.set_ylabel("CSAT (1-5)")
    csat.set_xlabel("day (UTC)")
    figure.suptitle("NGX business metrics")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


async def _run(args: argparse.Namespace) -> int:
    from shared.business import compute
    from shared.stores.firestore import make_client

    days = days_since(args.since, datetime.now(UTC).date())
    db = make_client(get_ops_settings())
    try:
        rows = [(await compute(db, day)).as_dict() for day in days]
    finally:
        db.close()
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    if args.png:
        chart(rows, args.png)
        print(f"chart: {args.png}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except errors.AppError as exc:
        print(f"agentctl report: {exc.message}", file=sys.stderr)
        return 1
