"""The node's JSON-RPC methods over HTTP, with WebSocket notifications, on two engines."""

from __future__ import annotations

import pytest
import trio

from node.chain import ChainClient
from node.engine import register_node_methods
from node.rpc import ErrorCode, MethodRegistry, RpcClient, RpcError, RpcServer
from tests.actors import ALICE, BOB
from tests.engine.engine_support import NATIVE, Party, Setting

pytestmark = [pytest.mark.slow, pytest.mark.integration]
TOKEN = "engine-test-token"


async def serve(nursery: trio.Nursery, party: Party) -> tuple[RpcClient, str]:
    registry = MethodRegistry()
    server = RpcServer(registry, TOKEN)
    party.engine.notify = server.publish
    register_node_methods(registry, party.engine, lambda: {"address": party.address})
    url = await nursery.start(server.run)
    await nursery.start(party.transport.run)
    await nursery.start(party.engine.run)
    return RpcClient(url, TOKEN), url


async def expect_error(code: int, call: object) -> str:
    with pytest.raises(RpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code, caught.value
    return caught.value.message


async def test_open_and_close_over_rpc(setting: Setting, chain_snapshot: ChainClient) -> None:
    alice, bob = setting.party("alice", ALICE, 1), setting.party("bob", BOB, 2)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            alice_rpc, alice_url = await serve(nursery, alice)
            bob_rpc, _ = await serve(nursery, bob)
            assert await alice_rpc.call("get_address") == ALICE.address
            async with bob_rpc.notifications(["objective_completed"]) as completed:
                created = await alice_rpc.call(
                    "create_ledger_channel", counterparty=BOB.address, amount="7"
                )
                assert isinstance(created, dict)
                note = await completed.__anext__()
            assert note.method == "objective_completed"
            assert note.params["id"] == created["objective_id"]
            channel = created["channel_id"]
            alice_view = await alice_rpc.call("get_ledger_channel", channel_id=channel)
            bob_view = await bob_rpc.call("get_ledger_channel", channel_id=channel)
            assert isinstance(alice_view, dict)
            assert isinstance(bob_view, dict)
            assert alice_view["status"] == bob_view["status"] == "OPEN"
            assert alice_view["balances"] == [{"asset": NATIVE, "me": "7", "them": "0"}]
            assert alice_view["holdings"] == bob_view["holdings"]
            assert await bob_rpc.call("get_all_ledger_channels") == [bob_view]

            await hostile_calls(alice_rpc, alice_url, str(channel))

            async with alice_rpc.notifications(["objective_completed"]) as completed:
                closed = await bob_rpc.call("close_ledger_channel", channel_id=channel)
                assert isinstance(closed, dict)
                note = await completed.__anext__()
            assert note.params["id"] == closed["objective_id"]
            objective = await alice_rpc.call(
                "get_objective", objective_id=str(closed["objective_id"])
            )
            assert isinstance(objective, dict)
            assert objective["status"] == "DONE"
            nursery.cancel_scope.cancel()
    assert chain_snapshot.balance(ALICE.address) == 7
    for party in (alice, bob):
        party.close()


async def hostile_calls(rpc: RpcClient, url: str, channel: str) -> None:
    """Bad calls get JSON-RPC errors that say what is wrong; nothing changes."""
    message = await expect_error(
        ErrorCode.INVALID_PARAMS,
        rpc.call("create_ledger_channel", counterparty=ALICE.address, amount="1"),
    )
    assert "is this node itself" in message
    await expect_error(
        ErrorCode.INVALID_PARAMS,
        rpc.call("create_ledger_channel", counterparty="0x1234", amount="1"),
    )
    await expect_error(
        ErrorCode.INVALID_PARAMS,
        rpc.call("create_ledger_channel", counterparty=BOB.address, amount="-1"),
    )
    message = await expect_error(
        ErrorCode.INVALID_PARAMS,
        rpc.call("create_ledger_channel", counterparty=BOB.address, amount="0"),
    )
    assert "would hold nothing" in message
    message = await expect_error(
        ErrorCode.INVALID_PARAMS,
        rpc.call(
            "create_ledger_channel",
            counterparty=BOB.address,
            amount=str(2**256 - 1),
            counterparty_amount="1",
        ),
    )
    assert "exceeds uint256" in message
    unknown = "0x" + "ab" * 32
    await expect_error(
        ErrorCode.CHANNEL_NOT_FOUND, rpc.call("close_ledger_channel", channel_id=unknown)
    )
    await expect_error(
        ErrorCode.CHANNEL_NOT_FOUND, rpc.call("get_ledger_channel", channel_id=unknown)
    )
    await expect_error(
        ErrorCode.OBJECTIVE_NOT_FOUND,
        rpc.call("get_objective", objective_id="DirectFunding-" + unknown),
    )
    await expect_error(
        ErrorCode.INVALID_PARAMS, rpc.call("get_objective", objective_id="no such thing")
    )
    await expect_error(ErrorCode.METHOD_NOT_FOUND, rpc.call("drain_all_funds"))
    await expect_error(
        ErrorCode.UNAUTHORISED,
        RpcClient(url, "wrong-token").call("close_ledger_channel", channel_id=channel),
    )
    view = await rpc.call("get_ledger_channel", channel_id=channel)
    assert isinstance(view, dict)
    # The same fixed part again: the channel exists, a second funding is refused.
    message = await expect_error(
        ErrorCode.INVALID_STATE,
        rpc.call(
            "create_ledger_channel",
            counterparty=BOB.address,
            amount="1",
            nonce=view["channel_nonce"],
        ),
    )
    assert "exists" in message
    assert view["status"] == "OPEN"
