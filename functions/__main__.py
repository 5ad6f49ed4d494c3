"""``python -m functions``: serve one registered function the way Cloud Run runs it (the image's
command, the local stack's and the tests').

The function comes from ``--target`` or ``FUNCTION_TARGET``; its source file, from the registry.
functions-framework's own command line then runs in this process (ASGI, one uvicorn worker), so
the launcher costs no second interpreter start.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from shared import registry

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m functions", description=__doc__)
    parser.add_argument("--target", default=os.environ.get("FUNCTION_TARGET"))
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args()
    if not args.target:
        parser.error(f"--target or FUNCTION_TARGET: one of {[f.name for f in registry.FUNCTIONS]}")
    try:
        spec = registry.function(args.target)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    from functions_framework._cli import _cli

    # functions-framework's documented command line (its `functions-framework` entry point).
    _cli.main(
        args=[
            "--target",
            spec.name,
            "--source",
            str(ROOT / spec.source),
            "--asgi",
            "--host",
            args.host,
            "--port",
            str(args.port),
        ],
        prog_name="functions-framework",
    )


if __name__ == "__main__":
    main()
