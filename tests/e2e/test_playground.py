"""The playground in a real browser: Debian's headless Chromium driven by Selenium against the
running stack. Each test saves a screenshot under test-artifacts/playground/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from emulator.stack import playground_origin
from tests.conftest import LocalStack
from tests.e2e.frontend import ROOT, build_playground

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "playground"
CORPUS = ROOT / "tests" / "data" / "corpus"
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium, with the flags a machine without outside network needs."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "run `make test` (installs chromium)"
    build_playground()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = 15) -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except StaleElementReferenceException:
            found = None
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def page(browser: WebDriver, stack: LocalStack, user: str = "alice") -> WebDriver:
    """The playground, loaded and signed in as ``user``."""
    browser.get(playground_origin(stack.settings))
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready"), "the page")
    if user != "alice":
        Select(browser.find_element(By.ID, "user")).select_by_value(user)
        wait_for(
            lambda: browser.execute_script("return document.body.dataset.user") == user,
            f"the switch to {user}",
        )
    return browser


def send(browser: WebDriver, text: str) -> WebElement:
    """Type a message, press Enter, and return the answer's list item."""
    before = len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=answer]"))
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    return wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=answer]")[before:],
        "the answer to appear",
    )[0]


def show_options(browser: WebDriver) -> None:
    """Open the request options (a closed <details>), as a user would."""
    details = browser.find_element(By.CSS_SELECTOR, "#composer details")
    if details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()


def finished(answer: WebElement, state: str = "done") -> None:
    wait_for(lambda: answer.get_attribute("data-state") == state, f"the answer to be {state}")


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 5000
    return path


def cancelled_calls(stack: LocalStack) -> int:
    report: dict[str, Any] = stack.model_calls()["cancelled"]
    return sum(sum(methods.values()) for methods in report.values())


def test_a_message_streams_into_the_page(browser: WebDriver, stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=30)
    page(browser, stack)
    answer = send(browser, "Tell me about the weather on Mars")
    text = answer.find_element(By.CSS_SELECTOR, "[data-testid=answer-text]")
    partial: set[int] = set()

    def progress() -> bool:
        partial.add(len(text.text))
        return answer.get_attribute("data-state") == "done"

    wait_for(progress, "the streamed answer")
    assert len(partial - {0}) >= 2, f"the text did not grow in steps: {sorted(partial)}"
    assert int(answer.get_attribute("data-deltas") or 0) >= 2
    meta = answer.find_element(By.CSS_SELECTOR, ".meta").text
    assert "tokens" in meta and "$" in meta and " ms" in meta, meta
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations", headers=stack.auth("alice"), timeout=10
    ).json()["conversations"]
    assert len(stored) == 1

    good = answer.find_element(By.CSS_SELECTOR, "button[aria-label='Good (thumbs up)']")
    good.click()
    wait_for(lambda: good.get_attribute("aria-pressed") == "true", "the rating to be kept")
    detail = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{stored[0]['conversation_id']}",
        headers=stack.auth("alice"),
        timeout=10,
    ).json()
    rated = [m for m in detail["messages"] if m["role"] == "model"]
    assert rated[0]["feedback"]["thumbs"] == "up"
    screenshot(browser, "streamed-answer")


def test_stop_cancels_the_answer_and_the_model_call(browser: WebDriver, stack: LocalStack) -> None:
    stack.fault("gemini-2.5-flash", slow_stream_ms=200)
    page(browser, stack)
    before = cancelled_calls(stack)
    answer = send(browser, "Write me a very long story")
    wait_for(lambda: int(answer.get_attribute("data-deltas") or 0) >= 1, "the first delta")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=stop]").click()
    finished(answer, "stopped")
    wait_for(lambda: cancelled_calls(stack) > before, "the emulator to record the cancellation", 5)
    assert "stopped" in answer.find_element(By.CSS_SELECTOR, ".meta").text
    screenshot(browser, "stopped-answer")


def test_tool_calls_and_sources_are_shown(browser: WebDriver, stack: LocalStack) -> None:
    done = stack.agentctl(
        "corpus", "ingest", str(CORPUS), "--uri-prefix", "https://help.lumen-notes.example/"
    )
    assert done.returncode == 0, done.stderr
    page(browser, stack)
    answer = send(browser, "What is the status of order A-1234?")
    finished(answer)
    tool = answer.find_element(By.CSS_SELECTOR, "[data-testid=tools] li")
    assert tool.get_attribute("data-tool") == "order_status"
    assert 'order_status({"order_id":"A-1234"}) → ok' in tool.text, tool.text

    show_options(browser)
    Select(browser.find_element(By.ID, "retrieval")).select_by_value("auto")
    answer = send(browser, "How do I reset my password?")
    finished(answer)
    links = answer.find_elements(By.CSS_SELECTOR, "[data-testid=sources] a")
    assert links, "no sources rendered"
    assert str(links[0].get_attribute("href")).startswith("https://help.lumen-notes.example/")
    screenshot(browser, "tool-call-and-sources")


def test_a_conversation_is_deleted_from_the_list(browser: WebDriver, stack: LocalStack) -> None:
    page(browser, stack)
    finished(send(browser, "Something to delete later"))
    items = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "[data-testid=conversations] li"),
        "the conversation in the list",
    )
    conversation_id = items[0].get_attribute("data-id")
    screenshot(browser, "before-delete")
    items[0].find_element(By.CSS_SELECTOR, "[data-testid=delete]").click()
    wait_for(
        lambda: not browser.find_elements(By.CSS_SELECTOR, "[data-testid=conversations] li"),
        "the list to empty",
    )
    gone = httpx.get(
        f"{stack.url('chat')}/v1/conversations/{conversation_id}",
        headers=stack.auth("alice"),
        timeout=10,
    )
    assert gone.status_code == 404
    screenshot(browser, "after-delete")


def test_a_websocket_session_answers_and_the_emulator_view_counts_it(
    browser: WebDriver, stack: LocalStack
) -> None:
    page(browser, stack)
    show_options(browser)
    browser.find_element(By.ID, "use-session").click()
    answer = send(browser, "Hello over a WebSocket")
    finished(answer)
    assert answer.find_element(By.CSS_SELECTOR, "[data-testid=answer-text]").text
    browser.find_element(By.ID, "new-conversation").click()
    finished(send(browser, "Hello over a WebSocket"))  # the same first question: a cache hit

    browser.find_element(By.ID, "tab-emulator").click()
    rows = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#calls tr"), "the emulator's calls"
    )
    assert any("StreamGenerateContent" in row.text for row in rows)
    cache = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#cache tr"), "cache counters")
    hits = sum(int(row.find_elements(By.TAG_NAME, "td")[1].text) for row in cache)
    assert hits >= 1
    screenshot(browser, "emulator-view")


def test_another_user_approves_a_proposed_action(browser: WebDriver, stack: LocalStack) -> None:
    """olivia may cancel orders: the agent proposes it, she approves, the demo API is called."""
    page(browser, stack, user="olivia")
    answer = send(browser, "Please cancel order A-1234 now")
    finished(answer)
    assert answer.get_attribute("data-finish") == "confirmation_required"
    assert [r for r in stack.demo_requests() if r["path"].endswith("/cancel")] == []
    group = answer.find_element(By.CSS_SELECTOR, "[role=group][aria-label='Confirm cancel_order']")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#messages > li"))
    group.find_element(By.XPATH, ".//button[text()='Approve']").click()
    wait_for(
        lambda: [r for r in stack.demo_requests() if r["path"].endswith("/cancel")],
        "the approved cancellation to reach the demo API",
    )
    after = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#messages > li")[before:],
        "the agent's answer after the approval",
    )
    assert "cancel_order" in after[0].text, after[0].text
    stored = httpx.get(
        f"{stack.url('chat')}/v1/conversations", headers=stack.auth("olivia"), timeout=10
    ).json()["conversations"]
    assert len(stored) == 1  # olivia's own list, not alice's
    screenshot(browser, "approved-action")
