"""Narrow, lazy import of the Vertex AI GAPIC surface we use.

``google.cloud.aiplatform_v1``'s package ``__init__`` eagerly imports every service and type the SDK
has (about 0.6 s with compiled bytecode on a 2-core VM, more without). We need the prediction and
LLM-utility services only, so the two package ``__init__`` modules are registered without running
them, and just the submodules we use are imported (about 0.25 s). Cold start is a product metric on
serverless; the public classes are the SDK's own, unmodified.
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
    if spec is None:  # pragma: no cover - the dependency is pinned
        raise ImportError(f"{name} is not installed")
    sys.modules[name] = importlib.util.module_from_spec(spec)


def load(module: str) -> ModuleType:
    """Import ``google.cloud.aiplatform_v1.<module>`` without the package's eager ``__init__``."""
    with _lock:
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
