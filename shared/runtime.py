"""Process-wide services, built on first use so that a cold start imports only what it needs."""

from __future__ import annotations

from functools import lru_cache

from shared import telemetry
from shared.chat import ChatService
from shared.llm.client import LlmClient
from shared.logs import configure_logging
from shared.memorystore import Memorystore
from shared.settings import Settings, get_settings
from shared.stores.conversations import ConversationStore
from shared.stores.firestore import make_client


def init_process() -> Settings:
    """Validate settings and configure logging and tracing; every function calls this at import."""
    settings = get_settings()
    configure_logging(settings.project_id, settings.log_level)
    telemetry.configure(settings)
    return settings


@lru_cache(maxsize=1)
def chat_service() -> ChatService:
    """The chat use case wired to this process's model client, Memorystore and Firestore."""
    settings = get_settings()
    telemetry.install_flush_on_sigterm()  # here: in the serving worker, after the server's own
    db = make_client(settings)
    llm = LlmClient(settings, store=Memorystore(settings), db=db)
    return ChatService(settings, llm, ConversationStore(db))
