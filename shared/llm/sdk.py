"""Narrow, lazy import of the Vertex AI GAPIC surface we use.

``google.cloud.aiplatform_v1``'s package ``__init__`` eagerly imports every service and type
of the SDK (about 0.6 s with compiled bytecode on a 2-core VM, more without). We need the
prediction and LLM-utility services only, so the package ``__init__`` modules are registered
without running them and just the submodules we use are imported (about 0.25 s). Cold start is a
product metric on serverless; the classes are the SDK's own, unmodified. Any later use of the
package's full surface (``aiplatform_v1.SomeClient``) runs the real ``__init__`` on first access,
so other code that imports the whole package keeps working.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_PACKAGES = (
    "google.cloud.aiplatform_v1",
    "google.cloud.aiplatform_v1.types",
    "google.cloud.aiplatform_v1.services",
)
_lock = threading.Lock()


def _register_without_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:  # pragma: no cover - the dependency is pinned
        raise ImportError(f"{name} is not installed")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(attr: str) -> Any:
        """Submodules load alone; anything else runs the package's real ``__init__`` once."""
        if attr.startswith("__"):
            raise AttributeError(attr)
        if importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")
        module.__dict__.pop("__getattr__", None)
        loader.exec_module(module)
        return getattr(module, attr)

    module.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)  # as the import system does for a loaded submodule


def load(module: str) -> ModuleType:
    """Import ``google.cloud.aiplatform_v1.<module>`` without the package's eager ``__init__``."""
    with _lock:
        importlib.import_module("google.cloud")
        for package in _PACKAGES:
            _register_without_init(package)
        return importlib.import_module(f"google.cloud.aiplatform_v1.{module}")


def prediction_types() -> Any:
    """``aiplatform_v1.types.prediction_service`` (requests and responses)."""
    return load("types.prediction_service")


def content_types() -> Any:
    """``aiplatform_v1.types.content`` (Content, Part, GenerationConfig, Candidate)."""
    return load("types.content")


def llm_utility_types() -> Any:
    """``aiplatform_v1.types.llm_utility_service``."""
    return load("types.llm_utility_service")
