"""Baseline for start-up benchmarks: a bare functions-framework aio hello world."""

import functions_framework.aio


@functions_framework.aio.http
async def hello(request):  # type: ignore[no-untyped-def]
    return "Hello, world!"
