"""``scnode channel open|close|list`` and ``scnode pay``: parsing, the batch payer's pure
parts, errors without a node, and the commands against two running nodes on a devnet."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from node.chain import devnet_down, devnet_up
from node.cli import _channel, _pay, build_parser, main, payments_table
from node.cli._paying import BatchPayer, batch_sizes, paid_of_results
from node.core import constants
from node.home import NodeHome
from node.rpc import JsonValue, RpcConnectionError, RpcError
from node.rpc._client import batch_request_body, parse_batch_response
from tests.engine.engine_processes import NodeProcess, init_home, start_node, wait_done, wait_for

CHANNEL = "0x" + "ab" * 32
ALICE = "0x" + "11" * 20
IRENE = "0x" + "22" * 20
ETH = 10**18


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scnode")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _channel.register(subparsers)
    _pay.register(subparsers)
    return parser.parse_args(list(argv))


# ---------------------------------------------------------------------- parsing


def test_channel_open_routes(tmp_path: Path) -> None:
    base = ("channel", "open", "--home", str(tmp_path), "--counterparty", ALICE)
    found = parse(*base, "--amount", "2gwei")
    assert found.handler is _channel.channel_open_command
    assert _channel.open_params(found) == {"counterparty": ALICE, "amount": str(2 * 10**9)}
    direct = parse(*base, "--amount", "1", "--direct")
    assert _channel.open_params(direct)["intermediaries"] == []
    via = parse(*base, "--amount", "1", "--via", IRENE, "--via", ALICE, "--challenge-duration", "9")
    assert _channel.open_params(via)["intermediaries"] == [IRENE, ALICE]
    assert _channel.open_params(via)["challenge_duration"] == 9


@pytest.mark.parametrize(
    "argv",
    [
        ("channel", "open", "--counterparty", ALICE, "--amount", "1", "--direct", "--via", IRENE),
        ("channel", "open", "--counterparty", ALICE, "--amount", "1.5"),
        ("channel", "open", "--amount", "1"),
        ("channel", "close"),
        ("channel", "settle"),
        ("channel", "settle", "--channel", CHANNEL, "--timeout", "soon"),
        ("pay", "--channel", CHANNEL, "--amount", "1", "--count", "0"),
        ("pay", "--channel", CHANNEL, "--amount", "1", "--count", "-3"),
        ("pay", "--channel", CHANNEL, "--amount", "0.1wei"),
        ("channel", "frobnicate"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv, "--home", str(tmp_path))
    assert exited.value.code == 2


def test_pay_parses_amounts_and_counts(tmp_path: Path) -> None:
    found = parse("pay", "--home", str(tmp_path), "--channel", CHANNEL, "--amount", "1.5gwei")
    assert (found.handler, found.amount, found.count) == (
        _pay.pay_command,
        1_500_000_000,
        1,
    )
    assert (
        parse("pay", "--home", "h", "--channel", CHANNEL, "--amount", "7", "--count", "30").count
        == 30
    )


def test_scnode_lists_and_routes_the_new_commands() -> None:
    help_text = build_parser().format_help()
    assert "channel" in help_text
    assert "pay on a payment channel" in help_text
    namespace = build_parser("pay").parse_args(
        ["pay", "--home", "h", "--channel", CHANNEL, "--amount", "1"]
    )
    assert namespace.handler is _pay.pay_command


# ---------------------------------------------------------------------- batches, pure


@given(st.integers(0, 5_000), st.integers(1, 300))
def test_batch_sizes_cover_the_count(count: int, batch: int) -> None:
    sizes = batch_sizes(count, batch)
    assert sum(sizes) == count
    assert all(1 <= size <= batch for size in sizes)
    assert all(size == batch for size in sizes[:-1])


def test_batch_sizes_refuse_nonsense() -> None:
    for count, batch in ((-1, 10), (10, 0)):
        with pytest.raises(ValueError, match="expected count >= 0"):
            batch_sizes(count, batch)


def test_a_batch_body_numbers_the_calls_in_order() -> None:
    params: dict[str, JsonValue] = {"channel_id": CHANNEL, "amount": "12"}
    calls = json.loads(batch_request_body([("pay", params)] * 3))
    assert [call["id"] for call in calls] == [0, 1, 2]
    assert {call["method"] for call in calls} == {"pay"}
    assert all(call["params"] == {"channel_id": CHANNEL, "amount": "12"} for call in calls)


def answers(*items: Any) -> bytes:
    return json.dumps(list(items)).encode()


def test_paid_of_results_takes_the_largest_total() -> None:
    body = answers(
        *(
            {"jsonrpc": "2.0", "id": i, "result": {"paid": str(p)}}
            for i, p in enumerate((30, 10, 20))
        )
    )
    assert paid_of_results(parse_batch_response(200, body, 3)) == 30


def test_paid_of_results_raises_the_refusal() -> None:
    refused = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32016, "message": "not enough funds"}}
    body = answers({"jsonrpc": "2.0", "id": 0, "result": {"paid": "5"}}, refused)
    with pytest.raises(RpcError, match="not enough funds") as raised:
        paid_of_results(parse_batch_response(200, body, 2))
    assert raised.value.code == -32016
    whole = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": "no"}})
    with pytest.raises(RpcError, match="no"):
        parse_batch_response(401, whole.encode(), 2)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>", "not JSON"),
        (answers({"jsonrpc": "2.0", "id": 0, "result": {"paid": "5"}}), "expected 2 answers"),
        (answers({"id": 0, "result": {}}, {"id": 0, "result": {}}), "ids are not those"),
        (answers({"id": 0, "result": {"paid": "5"}}, 7), "ids are not those"),
        (answers({"id": 0, "result": {}}, {"id": 1, "result": {}}), "without 'paid'"),
        (answers({"id": 0, "result": {"paid": "-1"}}, {"id": 1, "result": 7}), "without 'paid'"),
    ],
)
def test_what_is_not_an_answer_to_pay_is_refused(body: bytes, problem: str) -> None:
    with pytest.raises(RpcConnectionError, match=problem):
        paid_of_results(parse_batch_response(200, body, 2))


def test_batch_payer_checks_its_settings() -> None:
    calls = constants.rpc_batch_calls_max
    payments = constants.rpc_pay_payments_max
    for settings in (
        {"batch": 0},
        {"batch": payments + 1},
        {"batch": calls + 1, "per_call": True},
        {"in_flight": 0},
    ):
        with pytest.raises(ValueError, match=r"batch|in_flight"):
            BatchPayer("http://127.0.0.1:1", "token", **settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        BatchPayer("ftp://127.0.0.1:1", "token")


def test_batch_payer_without_a_node() -> None:
    with pytest.raises(RpcConnectionError, match="pay batch"):
        BatchPayer("http://127.0.0.1:1", "token").pay(CHANNEL, 1, 250)


# ---------------------------------------------------------------------- tables


def rendered(table: Any) -> str:
    console = Console(file=io.StringIO(), width=140)
    console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_payments_table_shows_route_and_amounts() -> None:
    channel = {
        "id": CHANNEL,
        "status": "OPEN",
        "payer": ALICE,
        "payee": IRENE,
        "intermediaries": [],
        "funds": str(ETH),
        "paid": "250",
        "received": "0",
    }
    via = {**channel, "intermediaries": [IRENE], "status": "CLOSED"}
    text = rendered(payments_table([channel, via]))
    for shown in ("direct", "0x2222…2222", "1 ETH", "250 wei", "CLOSED"):
        assert shown in text


# ---------------------------------------------------------------------- without a node


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (("channel", "list"), "scnode channel list:"),
        (("channel", "close", "--channel", CHANNEL), "scnode channel close:"),
        (("channel", "open", "--counterparty", ALICE, "--amount", "1"), "scnode channel open:"),
        (("pay", "--channel", CHANNEL, "--amount", "1"), "scnode pay:"),
        (("pay", "--channel", CHANNEL, "--amount", "1", "--count", "5"), "scnode pay:"),
        (("channel", "settle", "--channel", CHANNEL, "--wait"), "scnode channel settle:"),
    ],
)
def test_commands_without_a_running_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], prefix: str
) -> None:
    NodeHome(tmp_path).initialise()
    (tmp_path / "rpc.url").write_text("http://127.0.0.1:1\n")
    (tmp_path / "rpc.token").write_text("token\n")
    (tmp_path / "rpc.token").chmod(0o600)
    assert main([*argv, "--home", str(tmp_path)]) == 1
    assert prefix in capsys.readouterr().err


# ---------------------------------------------------------------------- with nodes


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Alice and Bob as ``scnode run`` processes, with a ledger channel Alice 1 ETH / Bob 0."""
    root = tmp_path_factory.mktemp("channel_cli")
    devnet_up(root / "chain", nodes=2)
    nodes: list[NodeProcess] = []
    try:
        nodes.append(start_node("alice", init_home(root, "alice", 0), root / "chain"))
        bob_home = init_home(root, "bob", 1)
        nodes.append(start_node("bob", bob_home, root / "chain", peers=(nodes[0].multiaddr,)))
        alice, bob = nodes
        created = alice.call("create_ledger_channel", counterparty=bob.address, amount=str(ETH))
        for node in nodes:
            wait_done(node, created["objective_id"])
        yield alice, bob
    finally:
        for node in nodes:
            node.stop()
        devnet_down(root / "chain")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.slow
@pytest.mark.integration
def test_open_pay_list_close_with_the_cli(
    pair: tuple[NodeProcess, NodeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = pair
    home = ("--home", str(alice.home))
    opened = run_json(
        capsys,
        "channel",
        "open",
        *home,
        "--counterparty",
        bob.address,
        "--amount",
        "1gwei",
        "--direct",
    )
    assert opened["objective"]["status"] == "DONE"
    channel = opened["channel"]["id"]
    assert opened["channel"]["intermediaries"] == []
    assert opened["channel"]["funds"] == str(10**9)
    many = run_json(capsys, "pay", *home, "--channel", channel, "--amount", "3", "--count", "250")
    assert (many["payments"], many["paid"]) == (250, "750")
    one = run_json(capsys, "pay", *home, "--channel", channel, "--amount", "5")
    assert (one["payments"], one["paid"]) == (1, "755")
    assert main(["pay", *home, "--channel", channel, "--amount", "1", "--count", "45"]) == 0
    shown = capsys.readouterr().out
    assert "paid 45 × 1 wei in" in shown
    assert "total paid on" in shown
    assert "800 wei" in shown
    wait_for(
        "bob's vouchers",
        lambda: bob.call("get_payment_channel", channel_id=channel)["received"] == "800" or None,
    )
    listed = run_json(capsys, "channel", "list", "--home", str(bob.home))
    assert [(c["id"], c["received"], c["payer"]) for c in listed] == [
        (channel, "800", alice.address)
    ]
    code = main(["pay", *home, "--channel", channel, "--amount", "1gwei"])
    assert code == 1
    assert "scnode pay:" in capsys.readouterr().err  # more than the channel holds
    closed = run_json(capsys, "channel", "close", *home, "--channel", channel)
    assert closed["objective"]["status"] == "DONE"
    wait_done(bob, closed["objective"]["id"])
    ledger = alice.call("get_all_ledger_channels")[0]
    assert ledger["balances"][0]["me"] == str(ETH - 800)
    assert bob.call("get_all_ledger_channels")[0]["balances"][0]["me"] == "800"
    code = main(["channel", "list", "--home", str(alice.home)])
    assert code == 0
    assert "0x" in capsys.readouterr().out
