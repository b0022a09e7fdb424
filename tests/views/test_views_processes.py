"""Views end to end: `scnode run --view`, `scnode views add/list/remove`, `scnode sql` and
`query_sql` beside a running node process; `scnode run --module` refuses a module the
engine cannot rely on, and takes one that passes its checks on an existing home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.rpc import RpcError
from tests.derive.derive_strategies import CHANNELS_WASM, PAYMENTS_WASM
from tests.engine.engine_processes import cli, init_home, start_node, wait_done, wait_for
from tests.views.views_support import KINDS_WASM

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ETH = 10**18


def _sql(home: Path, query: str, *options: str) -> object:
    result = cli("sql", "--home", str(home), "--json", *options, query)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_views_beside_a_running_node(tmp_path: Path, devnet: Path) -> None:
    alice_home, bob_home = init_home(tmp_path, "alice", 0), init_home(tmp_path, "bob", 1)
    alice = start_node("alice", alice_home, devnet, options=("--view", str(PAYMENTS_WASM)))
    bob = start_node("bob", bob_home, devnet, peers=(alice.multiaddr,))
    try:
        created = alice.call(
            "create_ledger_channel", counterparty=bob.address, amount=str(2 * ETH),
            counterparty_amount=str(ETH),
        )  # fmt: skip
        for node in (alice, bob):
            wait_done(node, created["objective_id"])
        channel = created["channel_id"]
        query = f"SELECT status FROM channels WHERE channel_id = '{channel}'"
        wait_for(
            "alice's engine view",
            lambda: _sql(alice_home, query)["rows"] == [["open"]] or None,  # type: ignore[index]
        )
        holdings = alice.call("query_sql", sql="SELECT amount FROM engine.holdings")
        assert holdings == {"columns": ["amount"], "rows": [[str(3 * ETH)]], "truncated": False}
        with pytest.raises(RpcError, match="not authorized"):
            alice.call("query_sql", sql="DELETE FROM engine.channels")
        added = cli("views", "add", str(KINDS_WASM), "--home", str(alice_home))
        assert added.returncode == 0, added.stderr
        assert "view kinds added" in added.stdout
        listed = json.loads(cli("views", "list", "--home", str(alice_home), "--json").stdout)
        assert [view["name"] for view in listed] == ["engine", "payments", "kinds"]
        wait_for(
            "the kinds view",
            lambda: _sql(alice_home, "SELECT records FROM kinds.totals")["rows"][0][0]  # type: ignore[index]
            == alice.call("get_node_info")["log_last_seq"]
            or None,
        )
        assert cli("views", "remove", "kinds", "--home", str(alice_home)).returncode == 0
        refused = cli("views", "remove", "engine", "--home", str(alice_home))
        assert refused.returncode == 1
        assert "it stays" in refused.stderr
    finally:
        for node in (alice, bob):
            assert node.stop() == 0, node.errors()[-3000:]
            assert "Traceback" not in node.errors()
    # Stopped, the views are still there to query, as of the last step.
    tables = _sql(alice_home, "SELECT payer, payee FROM payments.payment_channels")
    assert tables["rows"] == [[alice.address.lower(), bob.address.lower()]]  # type: ignore[index]
    offline = cli("views", "list", "--home", str(alice_home))
    assert "the node is not running" in offline.stdout


def test_the_engine_module_is_checked_at_start(tmp_path: Path, devnet: Path) -> None:
    home = init_home(tmp_path, "carol", 0)
    refused = cli(
        "run", "--home", str(home), "--devnet", str(devnet), "--module", str(PAYMENTS_WASM)
    )
    assert refused.returncode == 1
    assert "cannot be the engine's module" in refused.stderr
    assert "get_channel unsupported" in refused.stderr
    assert "Traceback" not in refused.stderr
    # A module that passes the engine's checks (the reference code with another custom
    # section, so another sha256) runs on a home whose log another module folded.
    first = start_node("carol", home, devnet)
    assert first.stop() == 0
    replacement = tmp_path / "replacement.wasm"
    replacement.write_bytes(CHANNELS_WASM.read_bytes() + b"\x00\x05\x04test")
    node = start_node("carol", home, devnet, options=("--module", str(replacement)))
    try:
        info = node.call("get_node_info")
        assert info["module"]["name"] == "replacement.wasm"
        assert info["views"] == ["engine"]
    finally:
        assert node.stop() == 0, node.errors()[-3000:]
