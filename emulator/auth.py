"""``python -m emulator.auth --port N --key-dir D``: the local stack's identity provider.

Serves the JWKS of the development signing key (`emulator.devtokens`) at ``/jwks.json`` so the
functions verify locally minted ID tokens exactly as they verify Firebase's in production.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulator import devtokens


def app(key_dir: Path) -> Starlette:
    path = devtokens.ensure_key(key_dir)
    keys = devtokens.jwks(path)

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/jwks.json", jwks, methods=["GET"]), Route("/healthz", health)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.auth", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--key-dir", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.key_dir), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
