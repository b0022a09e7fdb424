"""What a hostile peer can cost the engine is bounded: rejections logged and answered,
our unacknowledged messages, the objectives it starts, the time its payloads take in a
step, and inputs the derivation module refuses. Engines without a chain on a memory
network, with the real log and module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from node.core import (
    SignedState,
    Signer,
    address_to_bytes,
    channel_id,
    constants,
    fixed_part_from_proto,
)
from node.core.errors import DeriveError
from node.derive import DeriveModule
from node.engine import CommandRefusedError, Engine, EngineConfig, MemoryNetwork, Refusal
from node.log import EventLog
from node.proto import nitro_pb2, wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind, PolicyLimits, limits_policy
from tests.actors import ALICE, BOB, IRENE
from tests.engine.engine_support import MODULE_PATH, NATIVE, eventually
from tests.engine.test_engine_hostile import ledger_state, payload

APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
MALLORY = IRENE


@pytest.fixture(scope="module")
def module() -> DeriveModule:
    return DeriveModule.from_file(MODULE_PATH)


class Node:
    """An engine with its log on a memory network (no chain)."""

    def __init__(
        self, directory: Path, module: DeriveModule, network: MemoryNetwork, signer: Signer
    ) -> None:
        self.log = EventLog.open(directory / signer.address / "log")
        limits = PolicyLimits({NATIVE: 10}, challenge_duration_s_min=10)
        self.engine = Engine(
            log=self.log,
            module=module,
            signer=signer,
            chain=None,
            config=EngineConfig(APP, limits_policy(limits), limits=limits, objective_expiry_s=1),
        )
        self.transport = network.endpoint(signer.address)
        self.engine.attach(self.transport)

    def kinds(self) -> list[str]:
        return [str(r.WhichOneof("payload")) for r in self.log.read()]

    def rejections(self) -> list[str]:
        return [r.rejected.reason for r in self.log.read() if r.WhichOneof("payload") == "rejected"]


@asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.transport.run)
            await nursery.start(node.engine.run)
        yield nursery
        nursery.cancel_scope.cancel()


def proposal(nonce: int, proposer: Signer = MALLORY, to: Signer = BOB) -> wire_pb2.Payload:
    """A prefund the proposer signed: a channel where ``to`` deposits nothing."""
    state = ledger_state(APP, (proposer, to), (1, 0), 0, nonce)
    return payload(ObjectiveKind.DIRECT_FUND, proposer.countersign(SignedState(state)))


def junk(count: int) -> list[wire_pb2.Payload]:
    """Payloads every one of which is refused (a voucher of no channel)."""
    return [wire_pb2.Payload(voucher=nitro_pb2.Voucher(channel_id=bytes(32))) for _ in range(count)]


async def test_rejections_are_logged_and_answered_within_budget(
    tmp_path: Path, module: DeriveModule
) -> None:
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    with trio.fail_after(30):
        async with running(bob):
            for _ in range(100):  # Mallory never acknowledges anything
                network.inject(MALLORY.address, BOB.address, junk(50))
            await eventually(lambda: handled(bob) == 100)
            await bob.engine.objectives_running()  # one more step: all of it logged
            records = bob.kinds()
            logged = constants.engine_rejections_logged_per_window
            # 5,000 refusals: one window's worth logged (and a summary when it ends).
            assert records.count("rejected") <= logged + 1
            assert records.count("received_messages") >= 1
            backlog, _ = bob.engine.state.backlog(mallory())
            assert backlog <= constants.engine_advice_backlog_max
            assert all(len(reason) <= 256 for reason in bob.rejections())
            # A long objective id is refused before use, and its reason stays short.
            long_id = wire_pb2.Payload(objective_id="\x01" * 1_000_000)
            network.inject(MALLORY.address, BOB.address, [long_id])
            await eventually(lambda: handled(bob) == 101)
    size = sum(len(r.SerializeToString()) for r in bob.log.read())
    assert size < 64 * 1024  # against 5,000 junk payloads and a 1 MB id
    assert bob.log.verify().ok


async def test_a_peer_whose_input_is_refused_gets_less_of_a_step(
    tmp_path: Path, module: DeriveModule
) -> None:
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    with trio.fail_after(30):
        async with running(bob):
            budget_ms = bob.engine._peer_step_budget_ms
            assert budget_ms(MALLORY.address) == constants.engine_peer_step_budget_ms
            for _ in range(constants.engine_rejections_logged_per_window + 1):
                network.inject(MALLORY.address, BOB.address, junk(1))
            total = constants.engine_rejections_logged_per_window + 1
            await eventually(lambda: handled(bob) == total)
            assert budget_ms(MALLORY.address) == constants.engine_refused_peer_step_budget_ms
            assert budget_ms(ALICE.address) == constants.engine_peer_step_budget_ms
            # The flooder's envelopes wait (a few per step, a step every 50 ms at most
            # for them alone) and are all handled in the end.
            for _ in range(200):
                network.inject(MALLORY.address, BOB.address, junk(1))
            await eventually(lambda: handled(bob) == total + 200)


async def test_a_state_sent_again_is_not_logged_again(tmp_path: Path, module: DeriveModule) -> None:
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    prefund = proposal(3)
    with trio.fail_after(30):
        async with running(bob):
            for _ in range(5):
                network.inject(MALLORY.address, BOB.address, [prefund])
            await eventually(lambda: handled(bob) == 5)
            await bob.engine.objectives_running()
    channel = channel_of(prefund)
    mallorys = [
        r
        for r in bob.log.read()
        if r.WhichOneof("payload") == "accepted_state"
        and r.accepted_state.channel_id == channel
        and [s.participant_index for s in r.accepted_state.signed_state.signatures] == [0]
    ]
    assert len(mallorys) == 1


async def test_a_peer_over_its_backlog_gets_no_new_work(
    tmp_path: Path, module: DeriveModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.core.constants.engine_peer_backlog_messages_max", 3)
    network = MemoryNetwork()
    alice = Node(tmp_path, module, network, ALICE)  # Bob is never there to acknowledge
    with trio.fail_after(30):
        async with running(alice):
            for _ in range(3):
                await alice.engine.create_ledger_channel(BOB.address, 1, challenge_duration=60)
            with pytest.raises(CommandRefusedError, match="not acknowledged 3") as refused:
                await alice.engine.create_ledger_channel(BOB.address, 1, challenge_duration=60)
            assert refused.value.refusal is Refusal.UNAVAILABLE
            # Bob's proposals are refused too, while he does not catch up.
            network.inject(BOB.address, ALICE.address, [proposal(9, BOB, ALICE)])
            await eventually(lambda: any("not acknowledged" in r for r in alice.rejections()))
    assert alice.log.verify().ok


async def test_objectives_peers_start_are_capped_and_expire(
    tmp_path: Path, module: DeriveModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.core.constants.engine_peer_objectives_max", 2)
    monkeypatch.setattr("node.engine._engine.engine_expiry_check_s", 0.2)
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    with trio.fail_after(30):
        async with running(bob):
            network.inject(MALLORY.address, BOB.address, [proposal(n) for n in (1, 2, 3)])
            await eventually(lambda: any("busy" in r for r in bob.rejections()))
            assert await bob.engine.objectives_running() == 2
            # Nobody goes on with them: after the expiry they are given up, logged.
            first = ObjectiveId(ObjectiveKind.DIRECT_FUND, channel_of(proposal(1)))
            entry = await bob.engine.wait_objective(first)
            assert entry.failure is not None
            assert entry.failure.startswith("expired: no further than"), entry.failure
            assert await bob.engine.objectives_running() == 0
            # Room again: a new proposal is taken.
            network.inject(MALLORY.address, BOB.address, [proposal(4)])
            await eventually(lambda: _runs(bob, 4))
    assert bob.log.verify().ok


async def test_a_flood_of_payloads_waits_its_turn_and_is_all_handled_in_order(
    tmp_path: Path, module: DeriveModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.core.constants.engine_peer_step_budget_ms", 0)
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    with trio.fail_after(30):
        async with running(bob):
            for nonce in range(1, 31):
                network.inject(MALLORY.address, BOB.address, [proposal(nonce)])
            await eventually(lambda: handled(bob) >= 1)
            # An honest call is answered while the flood is being worked through.
            assert await bob.engine.objectives_running() >= 0
            await eventually(lambda: _received(bob) == 30)
    steps = [
        list(r.received_messages.message_ids)
        for r in bob.log.read()
        if r.WhichOneof("payload") == "received_messages"
    ]
    assert len(steps) > 1  # not all in one step: the budget cut it
    assert [i for ids in steps for i in ids] == sorted(i for ids in steps for i in ids)


async def test_an_input_the_module_refuses_is_refused_and_the_node_goes_on(
    tmp_path: Path, module: DeriveModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = MemoryNetwork()
    bob = Node(tmp_path, module, network, BOB)
    poisoned = channel_of(proposal(7))
    fold = bob.engine._fold_module

    def failing_fold(step: object) -> None:
        for record in step.records:  # type: ignore[attr-defined]
            if record.accepted_state.channel_id == poisoned:
                raise DeriveError("the module refuses channel 7")
        fold(step)  # type: ignore[arg-type]

    monkeypatch.setattr(bob.engine, "_fold_module", failing_fold)
    with trio.fail_after(30):
        async with running(bob):
            network.inject(MALLORY.address, BOB.address, [proposal(7)])
            network.inject(MALLORY.address, BOB.address, [proposal(8)])
            await eventually(lambda: handled(bob) == 2)
            await eventually(
                lambda: any("derivation module refused" in r for r in bob.rejections())
            )
            assert await bob.engine.objectives_running() == 1  # channel 8 goes on
    assert bob.log.verify().ok


def mallory() -> bytes:
    return address_to_bytes(MALLORY.address)


def handled(node: Node) -> int:
    """How many of Mallory's messages the node has handled."""
    seen = node.engine.state.seen_of(mallory())
    return seen.contiguous_max + len(seen.above)


def channel_of(item: wire_pb2.Payload) -> bytes:
    return channel_id(fixed_part_from_proto(item.signed_state.state.fixed))


def _runs(node: Node, nonce: int) -> bool:
    objective = ObjectiveId(ObjectiveKind.DIRECT_FUND, channel_of(proposal(nonce)))
    return objective in node.engine.state.running


def _received(node: Node) -> int:
    return sum(
        len(r.received_messages.message_ids)
        for r in node.log.read()
        if r.WhichOneof("payload") == "received_messages"
    )
