"""Payment channels over JSON-RPC: open, pay, watch, close, with notifications."""

from __future__ import annotations

import pytest
import trio

from node.engine import register_node_methods
from node.protocols import parse_objective_id
from node.rpc import ErrorCode, MethodRegistry, RpcClient, RpcServer
from tests.actors import BOB, IRENE
from tests.engine.engine_support import Party, Setting, open_ledger
from tests.engine.test_engine_rpc import expect_error

pytestmark = [pytest.mark.slow, pytest.mark.integration]
TOKEN = "payments-test-token"


async def serve(nursery: trio.Nursery, party: Party) -> RpcClient:
    registry = MethodRegistry()
    server = RpcServer(registry, TOKEN)
    party.engine.notify = server.publish
    register_node_methods(registry, party.engine, lambda: {"address": party.address})
    url = await nursery.start(server.run)
    await nursery.start(party.transport.run)
    await nursery.start(party.engine.run)
    return RpcClient(url, TOKEN)


async def test_payment_channel_over_rpc(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            alice_rpc, _, bob_rpc = [await serve(nursery, party) for party in parties]
            await open_ledger(alice, irene, 10)
            await open_ledger(irene, bob, 10)
            async with bob_rpc.notifications(["payment_channel_updated"]) as updates:
                created = await alice_rpc.call(
                    "create_payment_channel",
                    counterparty=BOB.address,
                    intermediaries=[IRENE.address],
                    amount="5",
                )
                assert isinstance(created, dict)
                channel = created["channel_id"]
                async for note in updates:
                    if note.params["status"] == "OPEN":
                        break
            view = await alice_rpc.call("get_payment_channel", channel_id=channel)
            assert isinstance(view, dict)
            assert view["funds"] == "5"
            assert view["payer"] == alice.address
            for _ in range(2):
                answer = await alice_rpc.call("pay", channel_id=channel, amount="2")
            assert answer == {"channel_id": channel, "paid": "4", "payments": 1}
            await expect_error(
                ErrorCode.INVALID_STATE, alice_rpc.call("pay", channel_id=channel, amount="2")
            )
            unknown = "0x" + "ab" * 32
            for method in ("get_payment_channel", "close_payment_channel"):
                await expect_error(
                    ErrorCode.CHANNEL_NOT_FOUND, alice_rpc.call(method, channel_id=unknown)
                )
            await expect_error(
                ErrorCode.INVALID_PARAMS,
                alice_rpc.call("create_payment_channel", counterparty=BOB.address, amount="0"),
            )
            closed = await alice_rpc.call("close_payment_channel", channel_id=channel)
            assert isinstance(closed, dict)
            defund_id = parse_objective_id(str(closed["objective_id"]))
            for party in parties:
                assert (await party.engine.wait_objective(defund_id)).done
            bob_view = await bob_rpc.call("get_payment_channel", channel_id=channel)
            assert isinstance(bob_view, dict)
            assert bob_view["received"] == "4"
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_vouchers_out_of_band_and_channels_by_ledger_over_rpc(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            alice_rpc, irene_rpc, bob_rpc = [await serve(nursery, party) for party in parties]
            left = await open_ledger(alice, irene, 10)
            await open_ledger(irene, bob, 10)
            ledger = "0x" + left.hex()
            assert await irene_rpc.call("get_payment_channels_by_ledger", channel_id=ledger) == []
            created = await alice_rpc.call(
                "create_payment_channel",
                counterparty=BOB.address,
                intermediaries=[IRENE.address],
                amount="5",
            )
            assert isinstance(created, dict)
            fund_id = parse_objective_id(str(created["objective_id"]))
            for party in parties:
                assert (await party.engine.wait_objective(fund_id)).done
            channel = str(created["channel_id"])
            listed = await irene_rpc.call("get_payment_channels_by_ledger", channel_id=ledger)
            assert isinstance(listed, list)
            assert [item["id"] for item in listed] == [channel]  # type: ignore[index]
            await expect_error(
                ErrorCode.CHANNEL_NOT_FOUND,
                irene_rpc.call("get_payment_channels_by_ledger", channel_id=channel),
            )
            voucher = await alice_rpc.call("create_voucher", channel_id=channel, amount="3")
            assert isinstance(voucher, dict)
            assert voucher["amount"] == "3"
            answer = await bob_rpc.call("receive_voucher", **voucher)
            assert answer == {"channel_id": channel, "received": "3"}
            await expect_error(ErrorCode.INVALID_STATE, bob_rpc.call("receive_voucher", **voucher))
            short = dict(voucher, signature="0x" + "11" * 64)
            await expect_error(ErrorCode.INVALID_PARAMS, bob_rpc.call("receive_voucher", **short))
            view = await bob_rpc.call("get_payment_channel", channel_id=channel)
            assert isinstance(view, dict)
            assert view["received"] == "3"
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()
