"""Cold-start collector policy: no cyclic garbage collection until the first request is answered.

Importing the SDKs allocates hundreds of thousands of long-lived objects, and CPython's cyclic
collector walks them again and again while they load (≈ 45 ms of a chat function's start on a
2-core VM, about a tenth of it). A function imports this module before anything heavy, which
pauses the collector; `resume` — run by the router after the first response — freezes what
start-up built into the permanent generation (later collections never walk it again) and turns
the collector back on. A process that forks (the gunicorn master) resumes at once in the parent,
so only the serving worker waits for its first request.
"""

from __future__ import annotations

import gc
import os

_paused = False


def pause() -> None:
    """Stop cyclic collection until `resume`; reference counting still frees most garbage."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze the start-up heap and turn the collector back on; a no-op unless `pause` ran."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def paused() -> bool:
    return _paused


os.register_at_fork(after_in_parent=resume)
pause()
