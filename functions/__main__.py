"""``python -m functions``: serve one registered function the way Cloud Run runs it (the image's
command, the local stack's and the tests').

The function comes from ``--target`` or ``FUNCTION_TARGET``; its source file, from the registry.
functions-framework builds the ASGI app in this process as its own ``--asgi`` command line would
(plus the function's WebSocket routes), so the launcher costs no second interpreter start.
"""

from __future__ import annotations

import argparse
import os
import sys
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
    serve(spec, args.host, args.port)


def serve(spec: registry.FunctionSpec, host: str, port: int) -> None:
    """functions-framework's ASGI app for the function (as its ``--asgi`` command line builds
    it), with the function's WebSocket routes mounted, run by gunicorn with one uvicorn worker."""
    from functions_framework._http.gunicorn import UvicornApplication
    from functions_framework.aio import create_asgi_app
    from starlette.routing import WebSocketRoute

    app = create_asgi_app(spec.name, str(ROOT / spec.source), "http")  # type: ignore[no-untyped-call]
    module = sys.modules["main"]  # functions-framework loads the source as module "main"
    router = getattr(module, "router", None)
    for path, endpoint in getattr(router, "sockets", {}).items():
        app.router.routes.insert(0, WebSocketRoute(path, endpoint))
    server = UvicornApplication(  # type: ignore[no-untyped-call]
        app, host, port, False, worker_class="functions.server.Worker"
    )
    server.run()


if __name__ == "__main__":
    main()
