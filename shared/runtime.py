"""Process-wide services, built on first use so that a cold start imports only what it needs."""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

from shared import telemetry, web
from shared.agent import config as agent_config
from shared.agent.config import ToolsFile
from shared.agent.confirmations import ConfirmationStore
from shared.agent.egress import Egress
from shared.agent.loop import Agent
from shared.agent.runner import ToolRunner
from shared.agent.tools import ToolRegistry
from shared.auth.apikeys import ApiKeyStore
from shared.auth.tokens import TokenVerifier
from shared.backup.sinks import open_sink
from shared.chat import ChatService
from shared.erasure import Eraser
from shared.guard import Guard
from shared.handoffs import HandoffService, handoff_tool
from shared.idempotency import Idempotency
from shared.jobs.export import Exporter
from shared.jobs.queue import JobQueue
from shared.jobs.service import JobService
from shared.jobs.store import Job, JobStore
from shared.jobs.worker import JobWorker, view
from shared.llm.client import LlmClient
from shared.logs import configure_logging
from shared.memorystore import Memorystore
from shared.notices import NoticeHub, publish
from shared.ratelimit import RateLimiter
from shared.redact import Redactor
from shared.retrieval.corpus import CorpusStore
from shared.retrieval.embeddings import Embedder
from shared.retrieval.published import CorpusView, publish_if_behind
from shared.retrieval.rerank import Reranker
from shared.retrieval.retriever import Retriever
from shared.retrieval.storage_events import CloudStorageReader, EventIngestion, StorageEvent
from shared.retrieval.vector import VectorSearch
from shared.retrieval.vertex_vector import VertexVectorSearch
from shared.semantic_cache import SemanticCache
from shared.settings import Settings, get_settings
from shared.stores.conversations import ConversationStore
from shared.stores.firestore import make_client
from shared.stream_requests import StreamRequests
from shared.streams import StreamHub
from shared.topics import Topic


def init_process() -> Settings:
    """Validate settings, configure logging and tracing, and let every path reach the function;
    every function calls this at import."""
    web.route_every_path()
    settings = get_settings()
    configure_logging(settings.project_id, settings.log_level, redactor())
    telemetry.configure(settings)
    tools_file()  # a bad tools file stops the start, naming the mistake
    return settings


@lru_cache(maxsize=1)
def redactor() -> Redactor:
    """This process's redactor: the built-in kinds and the configured patterns."""
    return Redactor(get_settings().redact_patterns)


@lru_cache(maxsize=1)
def firestore() -> Any:
    telemetry.install_flush_on_sigterm()  # here: in the serving worker, after the server's own
    return make_client(get_settings())


@lru_cache(maxsize=1)
def memorystore() -> Memorystore:
    return Memorystore(get_settings())


@lru_cache(maxsize=1)
def llm() -> LlmClient:
    return LlmClient(get_settings(), store=memorystore(), db=firestore())


@lru_cache(maxsize=1)
def conversations() -> ConversationStore:
    return ConversationStore(firestore())


@lru_cache(maxsize=1)
def tools_file() -> ToolsFile:
    """The validated tools file (``NGX_TOOLS_FILE``)."""
    settings = get_settings()
    return agent_config.read(settings.tools_file, settings.tool_private_hosts)


@lru_cache(maxsize=1)
def tools() -> ToolRegistry:
    """This deployment's tools, wired to the process's egress and Firestore."""
    settings = get_settings()
    egress = Egress(exempt=settings.tool_private_hosts)
    configured = agent_config.build(
        tools_file(), egress, firestore(), settings.agent_tool_timeout_s
    )
    return ToolRegistry([*configured.tools.values(), handoff_tool()])


@lru_cache(maxsize=1)
def agent() -> Agent:
    settings = get_settings()
    runner = ToolRunner(memorystore(), settings.agent_tool_result_tokens)
    return Agent(settings, llm(), runner)


@lru_cache(maxsize=1)
def chat_service() -> ChatService:
    """The chat use case wired to this process's model client, Memorystore and Firestore."""
    settings = get_settings()
    scrub = redactor() if settings.redact_prompts else None
    confirmations = ConfirmationStore(firestore(), settings.confirmation_ttl_s)
    semantic = None
    if settings.semantic_cache_enabled:
        semantic = SemanticCache(settings, retriever().embedder, memorystore(), redactor())
    return ChatService(
        settings,
        llm(),
        conversations(),
        scrub,
        agent(),
        tools(),
        confirmations,
        retriever(),
        semantic,
        handoffs(),
    )


@lru_cache(maxsize=1)
def handoffs() -> HandoffService:
    settings = get_settings()
    topic = Topic(settings.project_id, settings.handoffs_topic) if settings.handoffs_topic else None
    return HandoffService(firestore(), memorystore(), settings, topic)


@lru_cache(maxsize=1)
def retriever() -> Retriever:
    """Retrieval for the chat: embeddings through the model client's channel and resilience."""
    settings = get_settings()
    model = llm()
    embedder = Embedder(settings, model.transport, model.resilience, memorystore())
    corpus = CorpusView(firestore(), settings)
    reranker = Reranker(settings) if settings.retrieval_rerank else None
    return Retriever(settings, embedder, vector_backend(), corpus, memorystore(), reranker)


@lru_cache(maxsize=1)
def vector_backend() -> VectorSearch | VertexVectorSearch:
    """Where nearest chunks are found: Firestore, or Vertex AI Vector Search (a setting)."""
    settings = get_settings()
    if settings.vector_backend == "vertex":
        return VertexVectorSearch(firestore(), settings)
    return VectorSearch(firestore())


@lru_cache(maxsize=1)
def event_ingestion() -> EventIngestion:
    """The ingest function's work: storage events into the corpus, the lexical index after."""
    settings = get_settings()
    backend = vector_backend()
    index = backend if isinstance(backend, VertexVectorSearch) else None
    corpus = CorpusStore(firestore(), retriever().embedder, index)
    publisher = None
    if settings.corpus_index_sink:
        sink = open_sink(settings.corpus_index_sink)
        publisher = partial(publish_if_behind, firestore(), sink, False)  # when it lags
    return EventIngestion(
        corpus,
        settings.ingest_buckets,
        CloudStorageReader(),
        publisher,
        defer=queue_ingestion,
        inline_max_bytes=settings.ingest_inline_max_bytes,
    )


INGEST_OWNER = "system:ingest"  # ingestion jobs belong to no user


async def queue_ingestion(event: StorageEvent) -> str:
    """A large upload's ingestion, queued for the worker."""
    return await job_service().queue("ingest", INGEST_OWNER, {"event": event.model_dump()})


async def run_ingestion(job: Job) -> dict[str, Any]:
    """The worker's ``ingest`` job: the queued event, ingested here."""
    assert job.params is not None
    return await event_ingestion().handle(StorageEvent.model_validate(job.params["event"]), True)


@lru_cache(maxsize=1)
def api_keys() -> ApiKeyStore:
    settings = get_settings()
    return ApiKeyStore(firestore(), memorystore(), settings.api_key_cache_s)


@lru_cache(maxsize=1)
def guard() -> Guard:
    """Authentication, scopes and rate limits for every non-public route."""
    settings = get_settings()
    return Guard(settings, TokenVerifier(settings), api_keys(), RateLimiter(memorystore()))


@lru_cache(maxsize=1)
def streams() -> StreamHub:
    return StreamHub(memorystore(), get_settings())


@lru_cache(maxsize=1)
def idempotency() -> Idempotency:
    return Idempotency(firestore(), get_settings())


@lru_cache(maxsize=1)
def stream_requests() -> StreamRequests:
    return StreamRequests(chat_service(), streams(), idempotency())


@lru_cache(maxsize=1)
def eraser() -> Eraser:
    return Eraser(firestore(), memorystore(), get_settings())


@lru_cache(maxsize=1)
def jobs() -> JobStore:
    return JobStore(firestore(), get_settings().job_lease_s)


@lru_cache(maxsize=1)
def job_queue() -> JobQueue:
    settings = get_settings()
    return JobQueue(settings.project_id, settings.jobs_topic)


@lru_cache(maxsize=1)
def exporter() -> Exporter:
    return Exporter(firestore(), get_settings())


async def notify_job(job: Job) -> None:
    """Tell the owner's open sessions that a job ended."""
    await publish(memorystore(), get_settings(), job.owner, "job", view(job))


@lru_cache(maxsize=1)
def job_worker() -> JobWorker:
    runners = {"export": exporter().run, "ingest": run_ingestion}
    return JobWorker(jobs(), runners, notify_job, get_settings().job_max_attempts)


@lru_cache(maxsize=1)
def notice_hub() -> NoticeHub:
    return NoticeHub(memorystore(), get_settings())


@lru_cache(maxsize=1)
def job_service() -> JobService:
    return JobService(jobs(), job_queue(), exporter())
