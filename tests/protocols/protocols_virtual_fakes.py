"""In-memory parties for virtual-channel tests: each keeps its fold of the virtual
channel and its own view of its ledgers, and runs effects as the engine would
(signed states and ledger proposals go to an outbox; delivery is explicit)."""

from __future__ import annotations

import random
from collections.abc import Sequence
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
)
from node.protocols import (
    CrankResult,
    LedgerChannel,
    Objective,
    ObjectiveView,
    ProposeLedgerUpdate,
    SendSignedState,
    SignedProposal,
    SignLedgerProposal,
    StateReceived,
    crank,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    new_ledger_channel,
    update,
)
from tests.protocols.protocols_fakes import (
    ALICE,
    BOB,
    IRENE,
    NATIVE,
    FakeAdjudicator,
    FakeChannelStore,
    ledger_fixed,
    simple_exit,
)

IVAN = Signer(bytes.fromhex("1ea91a2724b40fb8fed6a3648d49e9431996c09744fb841b718377fb0700f3e7"))
PAYMENT_APP = "0x2b6D7a7b3Fa5E9b1a3c1D0e7f4a8b9c0d1e2f3A4"
LEDGER_DEPOSIT = 100
# The virtual channel's outcome: Alice 10, Bob 2.
PAYER_AMOUNT = 10
PAYEE_AMOUNT = 2
PATHS: dict[int, tuple[Signer, ...]] = {
    0: (ALICE, BOB),
    1: (ALICE, IRENE, BOB),
    2: (ALICE, IRENE, IVAN, BOB),
}


def virtual_fixed(path: Sequence[Signer], nonce: int = 99, app: str = PAYMENT_APP) -> FixedPart:
    return FixedPart([signer.address for signer in path], nonce, app, 60)


def virtual_outcome(
    path: Sequence[Signer], payer: int = PAYER_AMOUNT, payee: int = PAYEE_AMOUNT
) -> tuple[SingleAssetExit, ...]:
    return (simple_exit(NATIVE, [(path[0], payer), (path[-1], payee)]),)


def setup_state(fixed: FixedPart, outcome: tuple[SingleAssetExit, ...], turn: int) -> State:
    return State(fixed, b"", outcome, turn, False)


def signed_by(state: State, signers: Sequence[Signer]) -> SignedState:
    participants = state.fixed.participants
    return SignedState(state, {participants.index(s.address): s.sign_state(state) for s in signers})


def funded_ledger(leader: Signer, follower: Signer, nonce: int, asset: str = NATIVE) -> SignedState:
    """A ledger's postfund signed by both, each party holding LEDGER_DEPOSIT."""
    fixed = ledger_fixed(nonce, (leader, follower))
    outcome = SingleAssetExit(
        asset,
        [
            Allocation(address_to_destination(leader.address), LEDGER_DEPOSIT),
            Allocation(address_to_destination(follower.address), LEDGER_DEPOSIT),
        ],
    )
    return signed_by(State(fixed, b"", (outcome,), 1, False), (leader, follower))


def path_ledgers(path: Sequence[Signer]) -> list[SignedState]:
    """One funded ledger per neighbouring pair; every other one is led by its right party."""
    ledgers = []
    for index in range(len(path) - 1):
        left, right = path[index], path[index + 1]
        leader, follower = (left, right) if index % 2 == 0 else (right, left)
        ledgers.append(funded_ledger(leader, follower, nonce=500 + index))
    return ledgers


@dataclass
class VirtualParty:
    """One node of the path: its objective, its fold of V, its ledger views, its outboxes."""

    signer: Signer
    objective: Objective
    store: FakeChannelStore
    left_id: bytes | None = None
    right_id: bytes | None = None
    ledgers: dict[bytes, LedgerChannel] = field(default_factory=dict)
    states_out: list[SendSignedState] = field(default_factory=list)
    proposals_out: list[tuple[str, SignedProposal]] = field(default_factory=list)
    last: CrankResult[Objective] | None = None

    def snapshot(self) -> ObjectiveView:
        left = self.ledgers[self.left_id] if self.left_id is not None else None
        right = self.ledgers[self.right_id] if self.right_id is not None else None
        return ObjectiveView(self.store.snapshot(FakeAdjudicator()), left, right)

    def receive_state(self, event: StateReceived) -> None:
        self.objective = update(self.objective, event)
        self.store.accept(event.signed_state)

    def receive_proposal(self, signed: SignedProposal) -> None:
        self.ledgers[signed.ledger_id] = ledger_receive(self.ledgers[signed.ledger_id], signed)

    def crank(self) -> CrankResult[Objective]:
        """Crank, then run the effects as the engine would."""
        result = crank(self.objective, self.snapshot(), self.signer)
        self.objective = result.objective
        for effect in result.effects:
            if isinstance(effect, SendSignedState):
                self.store.accept(effect.signed_state)
                self.states_out.append(effect)
            elif isinstance(effect, ProposeLedgerUpdate):
                ledger, signed = ledger_propose(
                    self.ledgers[effect.ledger_id], effect.proposal, self.signer
                )
                self.ledgers[effect.ledger_id] = ledger
                self.proposals_out.append((ledger.fixed.participants[1], signed))
            else:
                assert isinstance(effect, SignLedgerProposal)
                ledger, answer = ledger_sign_next(
                    self.ledgers[effect.ledger_id], effect.proposal, self.signer
                )
                self.ledgers[effect.ledger_id] = ledger
                self.proposals_out.append((ledger.fixed.participants[0], answer))
        self.last = result
        return result


def make_parties(
    path: Sequence[Signer],
    objectives: Sequence[Objective],
    ledgers: Sequence[SignedState],
    store_states: Sequence[SignedState] = (),
) -> list[VirtualParty]:
    """Parties of ``path``, each with its two ledger views and V's known states."""
    fixed = objectives[0].fixed
    parties = []
    for index, signer in enumerate(path):
        party = VirtualParty(signer, objectives[index], FakeChannelStore(fixed))
        for signed in store_states:
            party.store.accept(signed)
        if index > 0:
            party.left_id = channel_id(ledgers[index - 1].state.fixed)
            party.ledgers[party.left_id] = new_ledger_channel(ledgers[index - 1], signer.address)
        if index < len(path) - 1:
            party.right_id = channel_id(ledgers[index].state.fixed)
            party.ledgers[party.right_id] = new_ledger_channel(ledgers[index], signer.address)
        parties.append(party)
    return parties


def deliver_all(parties: Sequence[VirtualParty], rng: random.Random | None) -> int:
    """Deliver every outbox (in a shuffled order when ``rng`` is given); the count."""
    by_address = {party.signer.address: party for party in parties}
    messages: list[tuple[VirtualParty, StateReceived | SignedProposal]] = []
    for party in parties:
        for message in party.states_out:
            event = StateReceived(party.signer.address, message.signed_state)
            messages.append((by_address[message.recipient], event))
        for recipient, signed in party.proposals_out:
            messages.append((by_address[recipient], signed))
        party.states_out.clear()
        party.proposals_out.clear()
    if rng is not None:
        rng.shuffle(messages)
    for receiver, item in messages:
        if isinstance(item, StateReceived):
            receiver.receive_state(item)
        else:
            receiver.receive_proposal(item)
    return len(messages)


def run_virtual(
    parties: Sequence[VirtualParty], rng: random.Random | None = None, rounds_max: int = 30
) -> int:
    """Crank and deliver until every party is done and nothing moves; the rounds taken."""
    for round_number in range(rounds_max):
        order = list(parties)
        if rng is not None:
            rng.shuffle(order)
        for party in order:
            party.crank()
        moved = deliver_all(parties, rng)
        if moved == 0 and all(p.last is not None and p.last.done for p in parties):
            return round_number
    raise AssertionError(f"not done after {rounds_max} rounds: {[p.last for p in parties]}")
