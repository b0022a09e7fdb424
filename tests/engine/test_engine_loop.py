"""The loop itself: group commit of concurrent commands, refusals, rebuild from the log.

No chain here (transactions are never asked for before a prefund is complete),
a real RocksDB log and the real derivation module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from node.derive import DeriveModule
from node.engine import CommandRefusedError, Engine, EngineConfig, MemoryNetwork, Refusal
from node.log import EventLog, PreparedBatch, SeqRange
from node.proto import log_pb2
from node.protocols import DirectFundWaitingFor, ObjectiveKind, PolicyLimits, limits_policy
from tests.actors import ALICE, BOB
from tests.engine.engine_support import NATIVE

APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
COMMANDS = 50


class CountingLog(EventLog):
    """The real log, counting the records of each write."""

    batches: list[int]

    def append_batch(self, records: Sequence[log_pb2.LogRecord]) -> SeqRange:
        self.batches.append(len(records))
        return super().append_batch(records)

    def commit(self, prepared: PreparedBatch) -> SeqRange | None:
        self.batches.append(len(prepared))
        return super().commit(prepared)


def open_engine(path: Path, module: DeriveModule) -> tuple[CountingLog, Engine]:
    log = CountingLog.open(path)
    log.batches = []
    limits = PolicyLimits({NATIVE: 10}, challenge_duration_s_min=10)
    engine = Engine(
        log=log,
        module=module,
        signer=ALICE,
        chain=None,
        config=EngineConfig(APP, limits_policy(limits), limits=limits),
    )
    return log, engine


def kinds(log: EventLog) -> list[str]:
    return [str(record.WhichOneof("payload")) for record in log.read()]


async def test_concurrent_commands_share_one_log_write(
    tmp_path: Path, module: DeriveModule
) -> None:
    log, engine = open_engine(tmp_path / "log", module)
    network = MemoryNetwork()
    engine.attach(network.endpoint(ALICE.address))
    ids = []
    all_created = trio.Event()

    async def create(nonce: int) -> None:
        ids.append(
            await engine.create_ledger_channel(BOB.address, 1, challenge_duration=60, nonce=nonce)
        )
        if len(ids) == COMMANDS:
            all_created.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for nonce in range(COMMANDS):
                nursery.start_soon(create, nonce)
            await trio.testing.wait_all_tasks_blocked()
            await nursery.start(engine.run)
            await all_created.wait()
            nursery.cancel_scope.cancel()
    # One write for the commands, the prefunds we signed and the message carrying them.
    assert log.batches == [2 * COMMANDS + 1]
    assert kinds(log) == ["command"] * COMMANDS + ["accepted_state"] * COMMANDS + ["sent_message"]
    for objective_id in ids:
        entry = engine.state.objectives[objective_id]
        assert entry.waiting_for is DirectFundWaitingFor.COMPLETE_PREFUND
    _, bob_inbox = network.inbox(BOB.address)
    _, message, _ = bob_inbox.receive_nowait()
    assert message is not None
    assert len(message.payloads) == COMMANDS  # every prefund to Bob in one message
    with pytest.raises(trio.WouldBlock):
        bob_inbox.receive_nowait()
    log.close()


async def test_restart_rebuilds_objectives_without_signing_again(
    tmp_path: Path, module: DeriveModule
) -> None:
    log, engine = open_engine(tmp_path / "log", module)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            first = await engine.create_ledger_channel(BOB.address, 3, challenge_duration=60)
            second = await engine.create_ledger_channel(BOB.address, 4, challenge_duration=60)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    last_seq = log.last_seq
    log.close()

    log, engine = open_engine(tmp_path / "log", module)
    assert set(engine.state.objectives) == {first, second}
    assert all(entry.running for entry in engine.state.objectives.values())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert log.last_seq == last_seq  # the prefunds were signed and logged before
    for entry in engine.state.objectives.values():
        assert entry.waiting_for is DirectFundWaitingFor.COMPLETE_PREFUND
    info = engine.objective_info(first)
    assert info["status"] == "RUNNING"
    assert info["kind"] == ObjectiveKind.DIRECT_FUND.value
    log.close()


async def test_refused_commands_are_answered_and_audited(
    tmp_path: Path, module: DeriveModule
) -> None:
    log, engine = open_engine(tmp_path / "log", module)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            created = await engine.create_ledger_channel(
                BOB.address, 3, challenge_duration=60, nonce=7
            )
            with pytest.raises(CommandRefusedError) as again:
                await engine.create_ledger_channel(BOB.address, 3, challenge_duration=60, nonce=7)
            assert again.value.refusal is Refusal.CONFLICT
            with pytest.raises(CommandRefusedError) as premature:
                await engine.close_ledger_channel(created.channel_id)
            assert premature.value.refusal is Refusal.CONFLICT
            assert "is not open" in premature.value.message
            with pytest.raises(CommandRefusedError) as unknown:
                await engine.close_ledger_channel(bytes(32))
            assert unknown.value.refusal is Refusal.NOT_FOUND
            with pytest.raises(CommandRefusedError) as invalid:
                await engine.create_ledger_channel(ALICE.address, 3, challenge_duration=60)
            assert invalid.value.refusal is Refusal.INVALID
            nursery.cancel_scope.cancel()
    rejected = [r.rejected for r in log.read() if r.WhichOneof("payload") == "rejected"]
    assert [r.source for r in rejected] == [log_pb2.REJECTION_SOURCE_API] * 3
    assert "exists" in rejected[0].reason
    assert (await engine.ledger_channel(created.channel_id))["status"] == "PROPOSED"
    log.close()
