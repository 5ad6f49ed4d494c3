"""Conversation memory: the prompt budget keeps input tokens per turn bounded as a conversation
grows, by folding older turns into a rolling summary stored with the conversation."""

from __future__ import annotations

from typing import Any

from shared.chat import Caller, ChatService
from shared.contracts import ChatRequest
from shared.llm.client import LlmClient
from shared.memorystore import Memorystore
from shared.stores.conversations import ConversationStore
from tests.conftest import LocalStack


async def test_sixty_turns_keep_input_tokens_bounded(stack: LocalStack, firestore_db: Any) -> None:
    # Budget sized so that, with the emulator's 48-token answers, history overflows by turn 4.
    settings = stack.client_settings(prompt_history_tokens=250, summary_max_tokens=64)
    store = Memorystore(settings)
    llm = LlmClient(settings, store=store, db=firestore_db)
    service = ChatService(settings, llm, ConversationStore(firestore_db))
    caller = Caller(subject="dora")
    inputs: list[int] = []
    conversation_id = None
    for turn in range(1, 61):
        answer = await service.chat(
            ChatRequest(
                message=f"Turn {turn}: tell me more about topic {turn}.",
                conversation_id=conversation_id,
            ),
            caller,
            request_id=f"r{turn}",
        )
        conversation_id = answer.conversation_id
        inputs.append(answer.usage.input_tokens)
    await llm.close()
    await store.close()

    assert inputs[59] <= 1.2 * inputs[5], inputs
    assert max(inputs[5:]) <= 1.2 * inputs[5], inputs
    # Bounded by the budget, the summary cap, the system instruction and the message itself;
    # without the budget turn 60 would carry all 59 earlier exchanges (over 3,000 tokens).
    assert inputs[59] <= 250 + 64 + 50, inputs
    print("input tokens per turn:", inputs)
    doc = (await firestore_db.collection("conversations").document(conversation_id).get()).to_dict()
    assert doc["message_count"] == 120
    assert doc["summary"] and len(doc["summary"]) < 4096
    assert doc["summary_through"] is not None
    calls = stack.model_calls()["calls"]["gemini-2.5-flash"]["GenerateContent"]
    assert 60 < calls <= 120  # one answer per turn plus at most one summary per turn
