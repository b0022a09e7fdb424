"""The web dashboard in a real headless Chromium, while one node pays another.

The page is opened as a user would (the URL `scnode dashboard` prints); the test
checks that the live payment figures pushed over the WebSocket move, that channels,
peers and the log's tail are shown, that the SQL box answers, and saves a screenshot
(``dashboard.png`` in the test's tmp dir). The page and its WebSocket refuse a caller
without the token.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from node.rpc import RpcError
from tests.engine.engine_processes import NodeProcess, cli, init_home, start_node, wait_done
from tests.views.browser import Browser

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ETH = 10**18
FUNDS = 10**12  # what alice locks in the payment channel
PAYMENTS_PER_BATCH = 20


def _pay_until(alice: NodeProcess, channel: str, stop: threading.Event) -> None:
    """Pay 1 wei at a time, in batches, until told to stop."""
    pay = ("pay", {"channel_id": channel, "amount": "1"})
    while not stop.is_set():
        answers = alice.batch([pay] * PAYMENTS_PER_BATCH)
        assert not [a for a in answers if isinstance(a, RpcError)], answers
        time.sleep(0.05)


def _wait_text(browser: Browser, element_id: str, predicate: object, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = browser.text(element_id)
        if text is not None and predicate(text):  # type: ignore[operator]
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"#{element_id} is {text!r} after {timeout_s} s")
        time.sleep(0.2)


def _check_token_required(url: str) -> None:
    base, _, _ = url.partition("?")
    for bare in (base, base + "?token=" + "x" * 43):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bare)
        assert refused.value.code == 401
    with urllib.request.urlopen(url) as page:
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'sha256-" in policy
        assert page.headers["cache-control"] == "no-store"
    socket_url = base.replace("http://", "ws://").replace("/dashboard", "/ws")
    with pytest.raises(InvalidStatus) as refused_socket:
        connect(socket_url, subprotocols=["scnode", "bearer.wrong"])  # type: ignore[list-item]
    assert refused_socket.value.response.status_code == 401


def _open_channel(alice: NodeProcess, bob: NodeProcess) -> str:
    ledger = alice.call(
        "create_ledger_channel", counterparty=bob.address, amount=str(ETH),
        counterparty_amount=str(ETH),
    )  # fmt: skip
    for node in (alice, bob):
        wait_done(node, ledger["objective_id"])
    created = alice.call(
        "create_payment_channel", counterparty=bob.address, amount=str(FUNDS), intermediaries=[]
    )
    for node in (alice, bob):
        wait_done(node, created["objective_id"])
    return str(created["channel_id"])


def _watch_payments(browser: Browser) -> list[int]:
    """The vouchers figure, read every half second for a few seconds."""
    readings = []
    for _ in range(10):
        readings.append(int(browser.text("vouchers") or "0"))
        time.sleep(0.5)
    return readings


def _run_sql(browser: Browser) -> str:
    query = "SELECT count(*) AS open_channels FROM engine.channels WHERE status = 'open'"
    browser.evaluate(f"document.getElementById('sql-input').value = {json.dumps(query)}")
    browser.evaluate("document.getElementById('sql-run').click()")
    return _wait_text(browser, "sql-status", lambda text: "rows in" in text)


def test_the_dashboard_in_a_browser_during_payments(tmp_path: Path, devnet: Path) -> None:
    alice_home = init_home(tmp_path, "alice", 0)
    alice = start_node("alice", alice_home, devnet)
    bob = start_node("bob", init_home(tmp_path, "bob", 1), devnet, peers=(alice.multiaddr,))
    stop = threading.Event()
    payer: threading.Thread | None = None
    browser: Browser | None = None
    try:
        channel = _open_channel(alice, bob)
        printed = cli("dashboard", "--home", str(alice_home))
        assert printed.returncode == 0, printed.stderr
        url = printed.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert "/dashboard?token=" in url
        _check_token_required(url)
        browser = Browser(tmp_path)
        browser.navigate(url)
        _wait_text(browser, "live", lambda text: text == "connected")
        _wait_text(browser, "address", lambda text: text == alice.address)
        payer = threading.Thread(target=_pay_until, args=(alice, channel, stop), daemon=True)
        payer.start()
        readings = _watch_payments(browser)
        assert len(set(readings)) >= 3, f"the live figures did not move: {readings}"
        assert readings == sorted(readings), readings
        assert float(_wait_text(browser, "rate", lambda text: float(text) > 0)) > 0
        assert int(browser.text("paid") or "0") >= readings[-1]  # 1 wei per voucher
        assert channel[:8] in (browser.text("payments") or "")
        assert "OPEN" in (browser.text("ledgers") or "")
        _wait_text(browser, "peers", lambda text: bob.address[:8] in text and "yes" in text)
        _wait_text(browser, "log", lambda text: "ACCEPTED_VOUCHER" in text)
        status = _run_sql(browser)
        assert status.startswith("1 rows"), status
        # The ledger and the payment channel are open.
        assert browser.text("sql-result") == "open_channels2"
        shot = browser.screenshot(tmp_path / "dashboard.png")
        assert shot.stat().st_size > 20_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stop.set()
        if payer is not None:
            payer.join(timeout=30)
        if browser is not None:
            browser.close()
        for node in (alice, bob):
            assert node.stop() == 0, node.errors()[-3000:]
            assert "Traceback" not in node.errors()
