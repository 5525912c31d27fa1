"""examples/agent_inbox in a real browser: the system's Chromium driven by Playwright.

The app is served by uvicorn on loopback against the Mastodon and Bluesky sandboxes.
Where Chromium or Playwright is missing the tests skip, saying how to enable them.
Screenshots of the main screens (1280×800) go to a temporary directory, or to
``OMNICHANNEL_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("OMNICHANNEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ENABLE = ("install Debian's chromium package (apt-get install chromium) or point "
          "OMNICHANNEL_CHROMIUM at a Chromium binary, and install the test extra (playwright)")

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium found: {ENABLE}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason=f"playwright is missing: {ENABLE}")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is missing: install the test extra")
pytest.importorskip("jinja2", reason="jinja2 is missing: install the inbox or test extra")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from examples.agent_inbox.app import create_app, sandbox_inbox  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = {"width": 1280, "height": 800}
WAIT = 10_000  # ms


class Served:
    """The app on loopback, its sandboxes, and the browser."""

    def __init__(self, url: str, sandboxes: list[Any], browser: Any, shots: Path) -> None:
        self.url, self.sandboxes, self.browser, self.shots = url, sandboxes, browser, shots
        self.mastodon, self.bluesky = sandboxes

    def signed_in(self, agent: str) -> Any:
        page = self.browser.new_context(viewport=SIZE).new_page()
        page.goto(f"{self.url}/login")
        page.get_by_label("Agent").fill(agent)
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.url}/")
        return page

    def shot(self, page: Any, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    inbox, sandboxes = sandbox_inbox()
    mastodon, bluesky = sandboxes

    async def customers() -> None:
        mastodon.customer_mention("where is my parcel? 📦 ordered last week",
                                  author=mastodon.customer("alice", display_name="Alice"))
        mastodon.customer_mention("<script>alert('pwned')</script> <b>bold?</b>",
                                  author=mastodon.customer("mallory", display_name="Mallory"))
        bluesky.customer_mention("the jacket arrived in the wrong colour 🙄",
                                 author=bluesky.customer("bob", display_name="Bob"))

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(inbox, started=customers), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the inbox did not start"
        time.sleep(0.05)
    shots = Path(os.environ.get("OMNICHANNEL_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield Served(f"http://127.0.0.1:{port}", sandboxes, browser, shots)
        finally:
            browser.close()
            server.should_exit = True
            thread.join(10)


def _open(page: Any, text: str) -> None:
    page.locator(".row a", has_text=text).first.click()
    page.wait_for_selector("#thread")


def test_agent_replies_publicly_approves_a_draft_and_sees_live_updates(served: Served) -> None:
    """Sign in, see the queue, reply by keyboard, approve a draft, watch a new message arrive."""
    expect = sync_api.expect
    page = served.signed_in("anna")
    expect(page.locator(".row")).to_have_count(3, timeout=WAIT)
    expect(page.locator(".row .badge", has_text="bluesky")).to_have_count(1)
    served.shot(page, "queue")

    _open(page, "where is my parcel")
    expect(page.locator(".thread-head .handle")).to_contain_text("alice")
    expect(page.locator(".thread-head .badge")).to_have_text("mastodon")
    served.shot(page, "conversation")

    # The draft the handler held: edited, then approved from the keyboard.
    draft = page.locator("form.draft textarea").first
    expect(draft).to_be_visible(timeout=WAIT)
    draft.fill("Hi Alice, it left the warehouse this morning 🚚")
    draft.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("Draft approved and queued.", timeout=WAIT)

    # A public reply typed and sent with the keyboard; the counter is the network's.
    box = page.get_by_label("Your reply")
    box.focus()
    page.keyboard.type("Tracking: it arrives tomorrow 📦")
    expect(page.locator("#counter")).to_have_text("31 / 500 graphemes", timeout=WAIT)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("Public reply queued.", timeout=WAIT)
    expect(page.locator(".delivery .out-sent")).to_have_count(2, timeout=WAIT)
    served.shot(page, "replied")
    texts = [s.text for s in served.mastodon.sent()]
    assert any("it left the warehouse" in t for t in texts)
    assert any("it arrives tomorrow" in t for t in texts)

    # A new customer message shows up without a reload.
    page.goto(served.url + "/")
    page.evaluate("window.stayed = true")
    served.bluesky.customer_mention("is anyone there? it is urgent",
                                    author=served.bluesky.customer("dave", display_name="Dave"))
    expect(page.locator(".row", has_text="is anyone there")).to_have_count(1, timeout=WAIT)
    assert page.evaluate("window.stayed") is True


def test_private_handoff_collision_and_escaping(served: Served) -> None:
    """Move a public complaint to DMs; a colleague's claim refuses a send; markup stays text."""
    expect = sync_api.expect
    anna = served.signed_in("anna")
    _open(anna, "wrong colour")
    anna.get_by_label("Move to private").check()
    anna.get_by_label("Your reply").fill("Sorry Bob! Could you send me your order number?")
    anna.get_by_role("button", name="Send reply").click()
    expect(anna.locator(".notice")).to_have_text(
        "Moved to a private conversation; both replies are queued.", timeout=WAIT)
    expect(anna.locator(".delivery .out-sent")).to_have_count(2, timeout=WAIT)

    dialogs: list[str] = []
    ben = served.signed_in("ben")
    ben.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _open(ben, "bold?")
    expect(ben.locator("#holder")).to_contain_text("You are viewing", timeout=WAIT)
    body = ben.locator(".msg .body").first
    expect(body).to_contain_text("<script>alert('pwned')</script> <b>bold?</b>")
    assert ben.locator(".msg .body b").count() == 0

    anna.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    anna.goto(served.url + "/")
    _open(anna, "bold?")
    expect(anna.locator("#holder")).to_contain_text("ben", timeout=WAIT)
    anna.get_by_label("Your reply").fill("Hello Mallory")
    anna.get_by_role("button", name="Send reply").click()
    expect(anna.locator("#error")).to_have_text(
        "Not sent: ben is working on this conversation.", timeout=WAIT)
    served.shot(anna, "collision")
    assert not any("Hello Mallory" in s.text for s in served.mastodon.sent())
    assert dialogs == []
