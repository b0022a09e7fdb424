"""What must hold in every simulated run, checked while it runs and at its end.

While it runs (every few virtual seconds, and at each node's stop):

* money is conserved: per asset, the coins and tokens the chain holds for accounts
  and channels add up to the genesis supply, and a ledger channel open on chain that
  its ends derive as open with the same supported state holds exactly what that
  state allocates (more is money locked for good, less a channel underfunded);
* vouchers only grow: no node's largest voucher paid or received on a channel ever
  goes down, across crashes too;
* each node's derived state equals the Python reference fold of its log (every
  channel's view, the totals, the cursor);
* every log verifies (its hash chain, from where the last check stopped).

At the end, once the network is healed and every node is up:

* liveness: no objective still runs;
* every payment a payer logged reached its payee (the payee's largest voucher is the
  payer's);
* once everything is closed: no channel holds anything on chain, and each node's coins
  moved by exactly what it received less what it paid (no one's on-chain result is
  below what its vouchers and supported states entitle it to).

A failed check raises ``InvariantError`` naming the check; the runner adds the seed,
the action and the run's story.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from node.core import channel_id, uint256_from_bytes
from node.derive import RecordRejectedError
from node.proto import derive_pb2
from node.protocols import ChannelSnapshot, ObjectiveKind
from tests.sim.sim_adjudicator import NATIVE, unpack_status
from tests.sim.sim_chain import SIM_CONTRACTS

if TYPE_CHECKING:
    from tests.sim.sim_workload import Virtual, Workload
    from tests.sim.sim_world import SimNode, World

ASSETS = (NATIVE, SIM_CONTRACTS.token)
HOLDINGS_GRACE_S = 60.0


class InvariantError(AssertionError):
    """A check failed."""


@dataclass
class _Seen:
    """What the checks remember of one node across its restarts."""

    paid: dict[bytes, int] = field(default_factory=dict)
    received: dict[bytes, int] = field(default_factory=dict)
    verified_seq: int = 0


def fail(check: str, detail: str) -> None:
    raise InvariantError(f"{check}: {detail}")


class Invariants:
    """The checks of one world."""

    def __init__(self, world: World, workload: Workload) -> None:
        self.world = world
        self.workload = workload
        self._seen = {node.index: _Seen() for node in world.nodes}
        self.checks = 0
        self._holdings_wrong: dict[bytes, float] = {}
        supply: dict[str, int] = {}
        for (asset, _), amount in world.genesis.balances.items():
            supply[asset] = supply.get(asset, 0) + amount
        self.supply = supply

    # ------------------------------------------------------------------ while running

    def check(self) -> None:
        """Every running check, on every node that is up."""
        self.checks += 1
        self.check_supply()
        for node in self.world.up_nodes():
            self.check_node(node)
        self.check_ledger_holdings()

    def check_node(self, node: SimNode) -> None:
        self.check_vouchers(node)
        self.check_reference(node)
        self.check_log(node)

    def check_supply(self) -> None:
        state = self.world.chain.state
        for asset, supply in self.supply.items():
            held = sum(v for (a, _), v in state.holdings.items() if a == asset)
            owned = sum(v for (a, _), v in state.balances.items() if a == asset)
            # The adjudicator's own balance is what it holds for channels.
            owned -= state.balance(asset, SIM_CONTRACTS.adjudicator)
            if owned + held != supply:
                fail("conservation", f"{asset}: accounts {owned} + channels {held} != {supply}")
            if state.balance(asset, SIM_CONTRACTS.adjudicator) != held:
                fail("conservation", f"{asset}: the adjudicator owns other than it holds")

    def check_vouchers(self, node: SimNode) -> None:
        engine = node.running()
        seen = self._seen[node.index]
        for kind, now, before in (
            ("paid", engine.state.paid, seen.paid),
            ("received", {c: v.amount for c, v in engine.state.received.items()}, seen.received),
        ):
            for channel, amount in before.items():
                if now.get(channel, 0) < amount:
                    fail(
                        "vouchers only grow",
                        f"{node.name} {kind} on 0x{channel.hex()[:8]} went from {amount}"
                        f" to {now.get(channel, 0)}",
                    )
            before.update(now)

    def check_reference(self, node: SimNode) -> None:
        engine, log = node.running(), node.log
        assert log is not None
        reference = node.reference
        if engine.deriver.tentative:
            return  # between a step's fold and its write: checked at the next boundary
        for record in log.read(reference.cursor + 1):
            try:
                reference.apply(record)
            except RecordRejectedError as error:
                fail(
                    "reference fold",
                    f"{node.name}: the reference refuses record {record.seq}: {error}",
                )
        queries = [derive_pb2.Query(get_totals=derive_pb2.GetTotals())]
        queries.append(derive_pb2.Query(get_cursor=derive_pb2.GetCursor()))
        queries += [
            derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel))
            for channel in sorted(reference.channels)
        ]
        for query in queries:
            ours, theirs = engine.deriver.query(query), reference.query(query)
            if ours != theirs:
                fail(
                    "derived state",
                    f"{node.name}: the module and the reference fold differ on {query}"
                    f" at seq {reference.cursor}:\nmodule: {ours}\nreference: {theirs}",
                )

    def check_log(self, node: SimNode) -> None:
        log = node.log
        assert log is not None
        seen = self._seen[node.index]
        if log.last_seq <= seen.verified_seq:
            return
        report = log.verify(seen.verified_seq + 1)
        if not report.ok:
            fail("log verifies", f"{node.name}: {report}")
        seen.verified_seq = log.last_seq

    def check_ledger_holdings(self) -> None:
        """A ledger open on chain, derived as open by both ends with the same supported
        state, holds exactly what that state allocates: at once, or within
        ``HOLDINGS_GRACE_S`` (a reorg one block deeper than the confirmations takes a
        deposit back until its transaction is mined again)."""
        now = trio.current_time()
        wrong: dict[bytes, float] = {}
        for cid, problem in self._holdings_problems():
            since = self._holdings_wrong.get(cid, now)
            wrong[cid] = since
            if now - since >= HOLDINGS_GRACE_S:
                fail("conservation", problem)
        self._holdings_wrong = wrong

    def _holdings_problems(self) -> Iterator[tuple[bytes, str]]:
        state = self.world.chain.state
        for ledger in self.workload.ledgers:
            if not all(end.up for end in ledger.ends):
                continue
            cid = ledger.channel_id
            _, finalizes_at, _ = unpack_status(state.status.get(cid, bytes(32)))
            if finalizes_at != 0:
                continue
            snapshots = [end.running().views.snapshot(cid) for end in ledger.ends]
            supported = {_supported_key(s) for s in snapshots}
            if len(supported) != 1 or None in supported:
                continue
            snapshot = snapshots[0]
            assert snapshot is not None
            assert snapshot.supported is not None
            if snapshot.supported.state.turn_num < 1 or snapshot.supported.state.is_final:
                continue
            if any(s is None or s.challenge is not None for s in snapshots):
                continue
            for asset_exit in snapshot.supported.state.outcome:
                total = sum(a.amount for a in asset_exit.allocations)
                held = state.held(asset_exit.asset, cid)
                if held != total:
                    yield (
                        cid,
                        (
                            f"ledger 0x{cid.hex()[:8]} open at turn"
                            f" {snapshot.supported.state.turn_num} holds {held} on chain,"
                            f" its outcome allocates {total}"
                        ),
                    )

    # ------------------------------------------------------------------ at the end

    def check_liveness(self) -> None:
        stuck = []
        for node in self.world.nodes:
            engine = node.running()
            for objective_id, entry in engine.state.running_entries():
                waiting = entry.waiting_for.value if entry.waiting_for else "its start"
                stuck.append(f"{node.name} {objective_id} waiting for {waiting}")
        if stuck:
            fail("liveness", "objectives still run after the network healed: " + "; ".join(stuck))

    def check_settlements(self) -> None:
        """No settlement failed on a refused transaction while its ledger was paid out on
        chain: what it was to do was done (by another party's transaction), and a node that
        retried on a view the chain had not confirmed yet would report a false failure."""
        holdings = self.world.chain.state.holdings
        for node in self.world.nodes:
            engine = node.running()
            for objective_id, entry in engine.state.objectives.items():
                failure = entry.failure
                if objective_id.kind is not ObjectiveKind.SETTLE or failure is None:
                    continue
                ledger = objective_id.channel_id
                if "refused" not in failure or any(
                    amount for (_, channel), amount in holdings.items() if channel == ledger
                ):
                    continue
                fail(
                    "settlements",
                    f"{node.name} {objective_id} failed ({failure}), yet its ledger was paid out",
                )

    def check_payments_arrived(self) -> None:
        """What a payer paid on a channel still open reached its payee (in the engine
        and in what its module derives of its log); on a channel closed or settled, the
        payee got at least what its log says it received and at most what was paid."""
        for virtual in self.workload.virtuals:
            cid = virtual.channel_id
            paid = virtual.payer.running().state.paid.get(cid, 0)
            received = virtual.payee.running().state.received.get(cid)
            held = received.amount if received is not None else 0
            got = derived_received(virtual.payee, cid)
            moved = self.moved(virtual)
            if moved is None and not held == got == paid:
                fail(
                    "payments arrive",
                    f"0x{cid.hex()[:8]}: {virtual.payer.name} paid {paid},"
                    f" {virtual.payee.name} received {got} (its engine holds {held})",
                )
            if moved is not None and not got <= moved <= paid:
                fail(
                    "payments arrive",
                    f"0x{cid.hex()[:8]}: closed paying {virtual.payee.name} {moved};"
                    f" {virtual.payer.name} paid {paid}, {virtual.payee.name} received {got}",
                )

    def moved(self, virtual: Virtual) -> int | None:
        """What a closed virtual channel pays its payee (None: it is not closed): its
        final state's, or the challenge's it finalizes with."""
        snapshot = virtual.payee.running().views.snapshot(virtual.channel_id)
        if snapshot is None:
            return None
        supported = snapshot.supported
        final = supported if supported is not None and supported.state.is_final else None
        closing = final if snapshot.concluded else snapshot.challenge or final
        if closing is None:
            return None
        return closing.state.outcome[0].allocations[1].amount

    def check_settled(self) -> None:
        """Everything closed: channels hold nothing, and each node's coins moved by what
        it received less what it paid."""
        state = self.world.chain.state
        left = [
            f"0x{cid.hex()[:8]} holds {amount} of {asset}"
            for (asset, cid), amount in sorted(state.holdings.items())
            if amount
        ]
        expected = {node.address: 0 for node in self.world.nodes}
        for virtual in self.workload.virtuals:
            moved = self.moved(virtual)
            if moved is None:
                moved = derived_received(virtual.payee, virtual.channel_id)
            expected[virtual.payer.address] -= moved
            expected[virtual.payee.address] += moved
        wrong = []
        for node in self.world.nodes:
            for asset in ASSETS:
                moved = state.balance(asset, node.address) - self.world.genesis.balance(
                    asset, node.address
                )
                entitled = expected[node.address] if asset == NATIVE else 0
                if moved != entitled:
                    wrong.append(f"{node.name} {asset[:6]}: moved {moved}, entitled to {entitled}")
        if wrong:
            fail("settlement", "; ".join(wrong) + (" (" + "; ".join(left) + ")" if left else ""))
        if left:
            fail("settlement", "money left in channels: " + "; ".join(left))


def derived_received(node: SimNode, channel: bytes) -> int:
    """The largest voucher ``node`` logged as received on ``channel``, as its derivation
    module folds it (not the engine's memory, which a bug could lose while the log keeps
    it: a channel closed low would then pass)."""
    view = node.running().deriver.channel(channel)
    return uint256_from_bytes(view.received, "received") if view and view.received else 0


def _supported_key(snapshot: ChannelSnapshot | None) -> tuple[bytes, int] | None:
    if snapshot is None or snapshot.supported is None:
        return None
    return channel_id(snapshot.fixed), snapshot.supported.state.turn_num
