"""The chat page at / in a real headless browser (Debian's chromium driven by playwright)."""

import sys
from pathlib import Path

import pytest

from training.config import TrackingConfig
from training.language_model import load_language_model
from training.serve import Limits, make_app

sys.path.insert(0, str(Path(__file__).parent))  # RunningServer lives beside this file
from test_serve import RunningServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("no /usr/bin/chromium (apt-get install chromium): the chat page needs a real browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield context.new_page()
        finally:
            context.close()


def test_the_chat_page_streams_an_answer_at_the_chosen_temperature(browser_page, gpt_dir):
    lm = load_language_model(gpt_dir, TrackingConfig(enabled=False))
    with RunningServer(make_app(lm, Limits(max_tokens=64))) as server:
        requests = []
        browser_page.on("request", lambda r: requests.append(r.post_data_json) if r.method == "POST" else None)
        browser_page.goto(server.url + "/")
        browser_page.wait_for_function("document.getElementById('model').textContent.length > 1")
        browser_page.fill("#temperature", "0")
        browser_page.fill("#max-tokens", "12")
        # every text the answer's bubble held, however the browser groups the pieces into tasks: a text node
        # put into the bubble (its parent is the record's target: replaced nodes are detached by the time the
        # observer runs) and every in-place change of one (its old value)
        browser_page.evaluate("""window.seen = [];
            const inAnswer = (el) => el && el.classList && el.classList.contains('assistant');
            new MutationObserver((records) => records.forEach((r) => {
                if (r.type === 'characterData' && inAnswer(r.target.parentNode)) window.seen.push(r.oldValue);
                if (r.type === 'childList' && inAnswer(r.target))
                  r.addedNodes.forEach((n) => { if (n.nodeType === Node.TEXT_NODE) window.seen.push(n.data); });
              }))
              .observe(document.getElementById('log'),
                       {subtree: true, childList: true, characterData: true, characterDataOldValue: true})""")
        browser_page.fill("#prompt", "Biblioteka w Łodzi")
        browser_page.press("#prompt", "Enter")
        browser_page.wait_for_selector(".message.assistant[data-done]", timeout=30_000)
        answer = browser_page.inner_text(".message.assistant")
        assert browser_page.inner_text(".message.user") == "Biblioteka w Łodzi"
        seen = browser_page.evaluate("window.seen")
    growing = sorted({text for text in seen if text}, key=len)
    assert len(growing) >= 2 and all(b.startswith(a) for a, b in zip(growing, growing[1:])), seen  # streamed
    assert requests[0]["temperature"] == 0 and requests[0]["stream"] is True and requests[0]["model"] == lm.name
    assert requests[0]["messages"] == [{"role": "user", "content": "Biblioteka w Łodzi"}]
    expected = _greedy_chat(lm, requests[0]["messages"], 12)
    assert answer.strip() == expected.strip() and answer.strip()


def _greedy_chat(lm, messages, n):
    import torch

    from training.generate import generate
    from training.language_model import PLAIN_STOP

    ids = lm.encode_chat(messages)
    row = generate(lm.model, torch.tensor([ids]), n, temperature=0)[0, len(ids):].tolist()
    ends = [row.index(e) for e in lm.end_ids(chat=True) if e in row]
    return lm.decode(row[: min(ends, default=len(row))]).split(PLAIN_STOP[0])[0]
