"""Small in-memory stand-ins for what the engine gives objectives: a fake
adjudicator, a per-node fold of accepted states into snapshots, and parties
that run effects and deliver messages to each other."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    destination_to_address,
)
from node.protocols import (
    ChannelSnapshot,
    CrankResult,
    Event,
    Objective,
    ObjectiveView,
    SendSignedState,
    StateReceived,
    SubmitConcludeAndTransfer,
    SubmitDeposit,
    TransactionKind,
    TransactionSubmitted,
    crank,
    update,
)

ALICE = Signer(bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d"))
BOB = Signer(bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4"))
IRENE = Signer(bytes.fromhex("febb3b74b0b52d0976f6571d555f4ac8b91c308dfa25c7b58d1e6a7c3f50c781"))
CONSENSUS_APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
NATIVE = "0x0000000000000000000000000000000000000000"
TOKEN = "0x00000000000000000000000000000000000000AA"


def ledger_fixed(nonce: int = 7, participants: Iterable[Signer] = (ALICE, BOB)) -> FixedPart:
    return FixedPart([signer.address for signer in participants], nonce, CONSENSUS_APP, 60)


def simple_exit(asset: str, amounts: Iterable[tuple[Signer, int]]) -> SingleAssetExit:
    return SingleAssetExit(
        asset,
        [Allocation(address_to_destination(signer.address), amount) for signer, amount in amounts],
    )


@dataclass
class FakeAdjudicator:
    """Holdings per (channel, asset) and paid-out balances per (address, asset)."""

    holdings: dict[tuple[bytes, str], int] = field(default_factory=dict)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    deposited: dict[tuple[str, str], int] = field(default_factory=dict)
    deposits: int = 0
    # (depositor, asset, holdings before, amount) of each accepted deposit.
    deposit_log: list[tuple[str, str, int, int]] = field(default_factory=list)

    def holdings_of(self, channel: bytes) -> dict[str, int]:
        return {
            asset: held
            for (held_channel, asset), held in self.holdings.items()
            if held_channel == channel
        }

    def deposit(self, effect: SubmitDeposit, depositor: str) -> bool:
        """Apply a deposit as the adjudicator does: only if the holdings are as expected."""
        key = (effect.channel_id, effect.asset)
        if self.holdings.get(key, 0) != effect.expected_held:
            return False
        self.deposit_log.append((depositor, effect.asset, effect.expected_held, effect.amount))
        self.holdings[key] = effect.expected_held + effect.amount
        spent = (depositor, effect.asset)
        self.deposited[spent] = self.deposited.get(spent, 0) + effect.amount
        self.deposits += 1
        return True

    def conclude_and_transfer(self, effect: SubmitConcludeAndTransfer) -> None:
        """Pay each simple allocation out of the channel's holdings, in order."""
        state = effect.signed_final.state
        assert state.is_final
        assert len(effect.signed_final.signatures) == len(state.fixed.participants)
        channel = channel_id(state.fixed)
        for asset_exit in state.outcome:
            key = (channel, asset_exit.asset)
            held = self.holdings.get(key, 0)
            for allocation in asset_exit.allocations:
                paid = min(held, allocation.amount)
                held -= paid
                owner = (destination_to_address(allocation.destination), asset_exit.asset)
                self.balances[owner] = self.balances.get(owner, 0) + paid
            self.holdings[key] = held


@dataclass
class FakeChannelStore:
    """What the derivation module keeps of one channel, folded from accepted states."""

    fixed: FixedPart
    signatures: dict[State, dict[int, bytes]] = field(default_factory=dict)

    def accept(self, signed: SignedState) -> None:
        assert signed.state.fixed == self.fixed
        known = self.signatures.setdefault(signed.state, {})
        known.update(dict(signed.signatures))

    def snapshot(self, chain: FakeAdjudicator) -> ChannelSnapshot:
        count = len(self.fixed.participants)
        latest: list[SignedState | None] = [None] * count
        supported: SignedState | None = None
        for state in sorted(self.signatures, key=lambda state: state.turn_num):
            signed = SignedState(state, self.signatures[state])
            for index in signed.signer_indices:
                latest[index] = signed
            if len(signed.signatures) == count:
                supported = signed
        return ChannelSnapshot(
            self.fixed, latest, supported, chain.holdings_of(channel_id(self.fixed))
        )


@dataclass
class Party:
    """One node: its objective, its fold of the channel, its outbox and its event log."""

    signer: Signer
    objective: Objective
    store: FakeChannelStore
    outbox: list[SendSignedState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    last: CrankResult[Objective] | None = None
    # False: transactions wait in ``pending`` until ``submit_pending`` (a slow chain).
    immediate: bool = True
    pending: list[SubmitDeposit | SubmitConcludeAndTransfer] = field(default_factory=list)

    def apply(self, event: Event) -> None:
        self.objective = update(self.objective, event)
        self.events.append(event)
        if isinstance(event, StateReceived):
            self.store.accept(event.signed_state)

    def crank(self, chain: FakeAdjudicator) -> CrankResult[Objective]:
        """Crank, then run the effects as the engine would: log first, then act."""
        result = crank(self.objective, ObjectiveView(self.store.snapshot(chain)), self.signer)
        self.objective = result.objective
        for effect in result.effects:
            if isinstance(effect, SendSignedState):
                self.store.accept(effect.signed_state)
                self.outbox.append(effect)
            elif isinstance(effect, SubmitDeposit):
                self.apply(
                    TransactionSubmitted(TransactionKind.DEPOSIT, effect.channel_id, effect.asset)
                )
                self.pending.append(effect)
            else:
                channel = channel_id(effect.signed_final.state.fixed)
                self.apply(TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, channel))
                self.pending.append(effect)
        if self.immediate:
            self.submit_pending(chain)
        self.last = result
        return result

    def submit_pending(self, chain: FakeAdjudicator) -> None:
        """Send the transactions waiting for the chain."""
        for effect in self.pending:
            if isinstance(effect, SubmitDeposit):
                assert chain.deposit(effect, self.signer.address), "a stale deposit"
            else:
                chain.conclude_and_transfer(effect)
        self.pending.clear()


def deliver(sender: Party, parties: Iterable[Party]) -> int:
    """Hand ``sender``'s outbox to its recipients as StateReceived events."""
    count = 0
    by_address = {party.signer.address: party for party in parties}
    for message in sender.outbox:
        by_address[message.recipient].apply(
            StateReceived(sender.signer.address, message.signed_state)
        )
        count += 1
    sender.outbox.clear()
    return count


def run_until_done(parties: list[Party], chain: FakeAdjudicator, rounds_max: int = 20) -> int:
    """Crank every party and deliver their messages until all are done; the rounds taken."""
    for round_number in range(rounds_max):
        for party in parties:
            party.submit_pending(chain)
            party.crank(chain)
        moved = sum(deliver(party, parties) for party in parties)
        if moved == 0 and all(party.last is not None and party.last.done for party in parties):
            return round_number
    raise AssertionError(f"not done after {rounds_max} rounds: {[p.last for p in parties]}")
