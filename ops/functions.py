"""``agentctl functions``: the deployed functions as the registry declares them.

Cloud Build reads its service list from here (``--names``, ``--scheduled``), so a function added to
`shared.registry` is deployed, released and checked without editing the pipeline.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from shared import registry


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("functions", help="list the deployed functions (the registry)")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="every field, as JSON")
    shape.add_argument("--names", action="store_true", help="service names, one per line")
    shape.add_argument(
        "--scheduled",
        action="store_true",
        help="names of the private services (driven by Scheduler or Eventarc)",
    )
    parser.set_defaults(run=main)


def describe(spec: registry.FunctionSpec) -> dict[str, Any]:
    """One function as plain data: the registry's fields plus its service name and source."""
    return {**asdict(spec), "service": spec.service, "source": spec.source}


def main(args: argparse.Namespace) -> int:
    specs = registry.FUNCTIONS
    if args.json:
        print(json.dumps([describe(spec) for spec in specs], indent=1))
    elif args.names or args.scheduled:
        for spec in specs:
            if args.names or spec.access != "public":
                print(spec.service)
    else:
        print(f"{'SERVICE':18}  {'ACCESS':9}  {'PORT':5}  ROUTES")
        for spec in specs:
            routes = ", ".join(f"{r.method} {r.path}" for r in spec.routes)
            print(f"{spec.service:18}  {spec.access:9}  {spec.local_port:<5}  {routes}")
    return 0
