"""Which messages ask for a person: explicit first-person requests, not questions that mention
agents, people or transfers."""

from __future__ import annotations

import pytest

from shared.handoffs import asks_for_person

ASKS = [
    "I want to talk to a human",
    "This is not helping, I want to talk to a human",
    "Can I speak to a real person please?",
    "could i please speak with someone",
    "I'd like to speak with a representative",
    "we need to talk to a person",
    "Let me talk to an agent",
    "connect me to a live agent",
    "put me through to a human",
    "human please",
    "Representative!",
    "let me talk to a human",
]
DOES_NOT = [
    "How do I connect my agent to Slack?",
    "Transfer the file to someone else's drive",
    "Put someone's name on the invoice",
    "chat about the person who invented Python",
    "connect a human resources system",
    "Is the agent able to read my calendar?",
    "Who is the person responsible for billing?",
    "I talked to a human yesterday and they said it was fine",
    "What is the status of order A-1234?",
    "Can I talk to you about my invoice?",
]


@pytest.mark.parametrize("text", ASKS)
def test_requests_for_a_person_are_recognised(text: str) -> None:
    assert asks_for_person(text)


@pytest.mark.parametrize("text", DOES_NOT)
def test_mentions_are_not_requests(text: str) -> None:
    assert not asks_for_person(text)
