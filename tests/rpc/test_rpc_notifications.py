"""WebSocket notifications: order, filters, several subscribers, slow ones dropped."""

from __future__ import annotations

import pytest
import trio

from node.rpc import ErrorCode, Notification, NotificationHub, RpcClient, RpcError
from tests.rpc.conftest import SUBSCRIBER_QUEUE_MAX, Served, serve
from tests.rpc.rpc_support import wait_until


async def collect(
    client: RpcClient,
    count: int,
    into: list[Notification],
    ready: trio.Event,
    names: list[str] | None = None,
) -> None:
    async with client.notifications(names) as stream:
        ready.set()
        async for notification in stream:
            into.append(notification)
            if len(into) == count:
                return


async def test_several_subscribers_get_every_notification_in_order(nursery: trio.Nursery) -> None:
    served = await serve(nursery, subscriber_queue_max=1_024)
    count = 300
    subscribers = 3
    received: list[list[Notification]] = [[] for _ in range(subscribers)]
    async with trio.open_nursery() as inner:
        for into in received:
            ready = trio.Event()
            inner.start_soon(collect, served.client, count, into, ready)
            await ready.wait()
        assert served.server.subscriber_count == subscribers
        for sequence in range(count):
            kind = ("objective_completed", "ledger_channel_updated")[sequence % 2]
            assert served.server.publish(kind, {"sequence": sequence}) == subscribers
    expected = [
        Notification(("objective_completed", "ledger_channel_updated")[i % 2], {"sequence": i})
        for i in range(count)
    ]
    assert received == [expected] * subscribers


async def test_subscribers_choose_names(served: Served) -> None:
    only_payments: list[Notification] = []
    everything: list[Notification] = []
    async with trio.open_nursery() as inner:
        for into, names, count in (
            (only_payments, ["payment_channel_updated"], 2),
            (everything, None, 4),
        ):
            ready = trio.Event()
            inner.start_soon(collect, served.client, count, into, ready, names)
            await ready.wait()
        served.server.publish("objective_completed", {"id": "a"})
        served.server.publish("payment_channel_updated", {"id": "b"})
        served.server.publish("ledger_channel_updated", {"id": "c"})
        served.server.publish("payment_channel_updated", {"id": "d"})
    assert [n.params["id"] for n in only_payments] == ["b", "d"]
    assert [n.params["id"] for n in everything] == ["a", "b", "c", "d"]


async def test_a_name_is_wanted_only_while_a_subscriber_asks_for_it() -> None:
    hub = NotificationHub(queue_max=4)
    assert not hub.wanted("payment_channel_updated")
    payments = hub.subscribe(frozenset({"payment_channel_updated"}))
    assert hub.wanted("payment_channel_updated")
    assert not hub.wanted("ledger_channel_updated")
    everything = hub.subscribe(None)
    assert hub.wanted("ledger_channel_updated")
    hub.unsubscribe(everything)
    assert not hub.wanted("ledger_channel_updated")
    hub.unsubscribe(payments)
    assert not hub.wanted("payment_channel_updated")


async def test_subscription_is_live_when_the_upgrade_returns(served: Served) -> None:
    async with served.client.notifications() as stream:
        assert served.server.subscriber_count == 1
        assert served.server.publish("objective_completed", {"n": 1}) == 1
        with trio.fail_after(5):
            assert await stream.__anext__() == Notification("objective_completed", {"n": 1})
    await wait_until(lambda: served.server.subscriber_count == 0)
    assert served.server.publish("objective_completed", {"n": 2}) == 0


async def test_overflowing_subscriber_is_dropped_with_a_reason(served: Served) -> None:
    async with served.client.notifications() as stream:
        # No checkpoint between publishes: the writer cannot drain, the queue overflows.
        delivered = [
            served.server.publish("objective_completed", {"n": n})
            for n in range(SUBSCRIBER_QUEUE_MAX + 2)
        ]
        assert delivered == [1] * SUBSCRIBER_QUEUE_MAX + [0, 0]
        assert served.server.subscriber_count == 0
        with trio.fail_after(5):
            remaining = [notification async for notification in stream]
    assert remaining == []
    assert stream.close_code == 1008
    assert stream.close_reason is not None
    assert "queued" in stream.close_reason


async def test_stuck_subscriber_is_dropped_and_others_keep_up(served: Served) -> None:
    payload = "x" * 65536
    fast_inbox_send, fast_inbox = trio.open_memory_channel[Notification](1)
    published = 0
    async with trio.open_nursery() as inner, served.client.notifications() as stuck:

        async def fast_reader() -> None:
            async with served.client.notifications() as fast:
                await fast_inbox_send.send(Notification("ready", {}))
                async for notification in fast:
                    await fast_inbox_send.send(notification)

        inner.start_soon(fast_reader)
        await fast_inbox.receive()
        assert served.server.subscriber_count == 2
        with trio.fail_after(20):
            # The stuck subscriber never reads: its socket fills, then its queue.
            while served.server.subscriber_count == 2:
                served.server.publish("payment_channel_updated", {"n": published, "pad": payload})
                published += 1
                received = await fast_inbox.receive()
                assert received.params["n"] == published - 1
        assert served.server.subscriber_count == 1
        for extra in range(3):
            assert served.server.publish("payment_channel_updated", {"n": published + extra}) == 1
            assert (await fast_inbox.receive()).params["n"] == published + extra
        with trio.fail_after(5):
            backlog = [n.params["n"] async for n in stuck]
        assert backlog == list(range(len(backlog)))
        assert len(backlog) < published
        assert stuck.close_code in {1006, 1008}
        inner.cancel_scope.cancel()


async def test_publish_checks_its_arguments() -> None:
    hub = NotificationHub(queue_max=1)
    with pytest.raises(ValueError, match="notification name"):
        hub.publish("Bad Name", {})
    with pytest.raises(TypeError):
        hub.publish("objective_completed", {"value": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="queue_max"):
        NotificationHub(queue_max=0)


async def test_unauthorised_subscription_raises(served: Served) -> None:
    client = RpcClient(served.url, "not-the-token", timeout_ms=5_000)
    with pytest.raises(RpcError) as raised:
        async with client.notifications():
            pass
    assert raised.value.code == ErrorCode.UNAUTHORISED
