"""Personal data and the model: redacted from the prompt when NGX_REDACT_PROMPTS is set (the
emulator's ``echo:`` shows what the model received), left as written otherwise."""

from __future__ import annotations

import httpx

from tests.conftest import LocalStack, start_function

MESSAGE = "echo: refund bob@example.com card 4111 1111 1111 1111"


def test_the_model_receives_redacted_text_when_the_setting_is_on(stack: LocalStack) -> None:
    url, process = start_function(stack.settings, "chat", NGX_REDACT_PROMPTS="true")
    try:
        answer = httpx.post(
            f"{url}/v1/chat", json={"message": MESSAGE}, headers=stack.auth(), timeout=60
        )
    finally:
        process.terminate()
        process.wait(10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "refund [redacted email] card [redacted card]"


def test_by_default_the_model_receives_the_message_as_written(stack: LocalStack) -> None:
    answer = httpx.post(
        f"{stack.url('chat')}/v1/chat", json={"message": MESSAGE}, headers=stack.auth(), timeout=60
    )
    assert answer.json()["text"] == MESSAGE.removeprefix("echo: ")
