"""The loop's write-ahead promise under a failing disk, and what one message costs.

A step's records are written in one batch with one fsync, and nothing of the step
happens before: if the write fails, the engine's memory and its module are what
the log holds, nothing is acknowledged, and the peer's re-send is taken as new.
"""

from __future__ import annotations

import pytest
import trio

from node.core.errors import LogStorageError
from node.engine import encode_state
from node.log import EventLog, PreparedBatch, SeqRange
from node.proto import log_pb2
from tests.actors import ALICE, BOB
from tests.engine.engine_support import (
    Party,
    Setting,
    eventually,
    open_ledger,
    open_virtual_channel,
    start_parties,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class FaultyLog(EventLog):
    """The real log, whose next ``failures`` writes the disk refuses."""

    failures = 0
    failed = 0

    def commit(self, prepared: PreparedBatch) -> SeqRange | None:
        if self.failures:
            self.failures -= 1
            self.failed += 1
            raise LogStorageError("injected: the disk refused the write")
        return super().commit(prepared)


class CountingLog(EventLog):
    """The real log, remembering the record kinds of each write."""

    writes: list[list[str]]

    def commit(self, prepared: PreparedBatch) -> SeqRange | None:
        if not hasattr(self, "writes"):
            self.writes = []
        kinds = [log_pb2.LogRecord.FromString(v).WhichOneof("payload") for v in prepared.values]
        self.writes.append([str(kind) for kind in kinds])
        return super().commit(prepared)


def vouchers_received(party: Party) -> list[int]:
    return [
        int.from_bytes(r.accepted_voucher.voucher.amount, "big")
        for r in party.log.read()
        if r.WhichOneof("payload") == "accepted_voucher" and not r.accepted_voucher.sent
    ]


async def received(party: Party, channel: bytes) -> int:
    return int(str((await party.engine.payment_channel(channel))["received"]))


async def test_a_failed_write_changes_nothing_and_the_resent_voucher_is_taken_once(
    setting: Setting,
) -> None:
    alice = setting.party("alice", ALICE, 1)
    bob = setting.party("bob", BOB, 2, log_class=FaultyLog)
    assert isinstance(bob.log, FaultyLog)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            await open_ledger(alice, bob, 10)
            channel = await open_virtual_channel(alice, bob, [], 5)
            await alice.engine.pay(channel, 1)
            await until(lambda: received(bob, channel), lambda value: value == 1)
            state_before = encode_state(bob.engine.state)
            seq_before = bob.log.last_seq
            bob.log.failures = 1
            await alice.engine.pay(channel, 2)
            await eventually(lambda: bob.log.failed == 1)
            # The read goes through Bob's loop: it is answered after the rollback.
            assert await received(bob, channel) == 1
            assert encode_state(bob.engine.state) == state_before
            assert bob.log.last_seq == seq_before
            assert alice.transport.unacknowledged(BOB.address) > 0  # nothing acknowledged
            # Alice's transport sends it again; Bob takes it once.
            await until(lambda: received(bob, channel), lambda value: value == 3)
            await eventually(lambda: not _pending(alice))
            nursery.cancel_scope.cancel()
    assert vouchers_received(bob) == [1, 3]
    bob.close()
    bob = setting.party("bob", BOB, 2)
    assert await received(bob, channel) == 3  # it survives a restart
    assert bob.log.verify().ok
    for party in (alice, bob):
        party.close()


def _pending(party: Party) -> bool:
    return party.transport.unacknowledged(BOB.address) > 0


async def test_one_message_costs_one_write_at_the_receiver(setting: Setting) -> None:
    alice = setting.party("alice", ALICE, 1)
    bob = setting.party("bob", BOB, 2, log_class=CountingLog)
    assert isinstance(bob.log, CountingLog)
    bob.log.writes = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address, 10, challenge_duration=60
            )
            await eventually(lambda: fund_id in bob.engine.state.objectives)
            # Alice's prefund proposes the channel: Bob logs it, his decision, his own
            # prefund and the message carrying it, all in one write.
            # (Other inputs may share the step: a block mark, say. Group commit.)
            write = next(w for w in bob.log.writes if "command" in w)
            proposal = [kind for kind in write if kind != "chain_event"]
            assert proposal == [
                "accepted_state",  # Alice's prefund
                "command",  # Bob's policy approves the channel
                "received_messages",  # the message is handled
                "accepted_state",  # Bob's own prefund signature
                "sent_message",  # and the message that carries it to Alice
            ]
            assert (await bob.engine.wait_objective(fund_id)).done
            channel = await open_virtual_channel(alice, bob, [], 5)
            writes_before = len(bob.log.writes)
            await alice.engine.pay(channel, 1)
            await until(lambda: received(bob, channel), lambda value: value == 1)
            voucher_writes = [w for w in bob.log.writes[writes_before:] if "accepted_voucher" in w]
            assert voucher_writes == [["accepted_voucher", "received_messages"]]
            nursery.cancel_scope.cancel()
    for party in (alice, bob):
        party.close()
