"""Process-wide services, built on first use so that a cold start imports only what it needs."""

from __future__ import annotations

from functools import lru_cache

from shared.chat import ChatService
from shared.llm.vertex import VertexClient
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.stores.conversations import ConversationStore
from shared.stores.firestore import make_client


def init_process() -> Settings:
    """Validate settings and configure logging; every function's module calls this at import."""
    settings = get_settings()
    configure_logging(settings.project_id, settings.log_level)
    return settings


@lru_cache(maxsize=1)
def chat_service() -> ChatService:
    """The chat use case wired to this process's model client and Firestore."""
    settings = get_settings()
    store = ConversationStore(make_client(settings))
    return ChatService(settings, VertexClient(settings), store)
