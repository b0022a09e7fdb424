"""Property test of the ledger channel over a lossy, reordering, duplicating network:
whatever happens, once the network behaves both sides end on the same turn and state."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.core import Guarantee, State, state_hash, verify_signed_state
from node.protocols import (
    LedgerChannel,
    LedgerOutcome,
    Proposal,
    Remove,
    SignedProposal,
    apply_proposal,
    ledger_next_to_sign,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    ledger_unacknowledged,
)
from tests.protocols.protocols_fakes import ALICE, BOB
from tests.protocols.protocols_ledger_fixtures import add, ledgers, target


@st.composite
def proposal_sequences(draw: st.DrawFn) -> list[Proposal]:
    """A sequence of proposals that each fit the outcome left by the previous ones."""
    outcome = ledgers()[0].outcome
    proposals: list[Proposal] = []
    for number in range(draw(st.integers(min_value=1, max_value=8))):
        open_targets = list(outcome.guarantees)
        wants_remove: bool = draw(st.booleans())
        if open_targets and wants_remove:
            guarantee = draw(st.sampled_from(open_targets))
            proposal: Proposal = Remove(guarantee.target, draw(st.integers(0, guarantee.amount)))
        else:
            alice_left = draw(st.booleans())
            left, right = outcome.leader.amount, outcome.follower.amount
            if not alice_left:
                left, right = right, left
            left_deposit = draw(st.integers(0, left))
            right_deposit = draw(st.integers(0, right))
            proposal = add(number, left_deposit + right_deposit, left_deposit, alice_left)
        outcome = apply_proposal(outcome, proposal)
        proposals.append(proposal)
    return proposals


@dataclass
class Network:
    """Messages in flight: (to the follower?, signed proposal)."""

    flight: list[tuple[bool, SignedProposal]] = field(default_factory=list)


@dataclass
class Run:
    alice: LedgerChannel
    bob: LedgerChannel
    expected: list[Proposal]
    network: Network = field(default_factory=Network)
    proposed: int = 0

    def propose(self) -> None:
        if self.proposed < len(self.expected):
            self.alice, signed = ledger_propose(self.alice, self.expected[self.proposed], ALICE)
            self.proposed += 1
            self.network.flight.append((True, signed))

    def resend(self) -> None:
        self.network.flight.extend((True, signed) for signed in ledger_unacknowledged(self.alice))

    def deliver(self, position: int) -> None:
        to_bob, signed = self.network.flight.pop(position)
        if not to_bob:
            self.alice = ledger_receive(self.alice, signed)
            return
        before = self.bob.turn_num
        self.bob = ledger_receive(self.bob, signed)
        if signed.turn_num <= before and self.bob.acknowledgement is not None:
            self.network.flight.append((False, self.bob.acknowledgement))

    def sign(self) -> None:
        head = ledger_next_to_sign(self.bob)
        # The follower's objectives expect every proposal in the list, in any order.
        if head is not None and head.proposal in self.expected:
            self.bob, answer = ledger_sign_next(self.bob, head.proposal, BOB)
            self.network.flight.append((False, answer))


actions = st.lists(
    st.tuples(
        st.sampled_from(["propose", "resend", "deliver", "drop", "duplicate", "sign"]),
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(expected=proposal_sequences(), schedule=actions)
# Every proposal signed and the last answer lost: only an answer to the re-sent
# proposal unblocks the leader.
@example(
    expected=[add(1, 1, 1), add(2, 2, 1)],
    schedule=[
        ("propose", 0),
        ("propose", 0),
        ("deliver", 1),
        ("deliver", 0),
        ("sign", 0),
        ("sign", 0),
        ("drop", 0),
        ("drop", 0),
    ],
)
def test_any_interleaving_ends_in_agreement(
    expected: list[Proposal], schedule: list[tuple[str, int]]
) -> None:
    alice, bob = ledgers()
    run = Run(alice, bob, expected)
    for action, choice in schedule:
        flight = run.network.flight
        if action == "propose":
            run.propose()
        elif action == "resend":
            run.resend()
        elif action == "sign":
            run.sign()
        elif flight and action == "deliver":
            run.deliver(choice % len(flight))
        elif flight and action == "drop":
            flight.pop(choice % len(flight))
        elif flight and action == "duplicate":
            flight.append(flight[choice % len(flight)])
    # Then the network behaves: propose the rest, re-send, deliver everything.
    for _ in range(len(expected) + 3):
        while run.proposed < len(expected):
            run.propose()
        run.resend()
        while run.network.flight:
            run.deliver(len(run.network.flight) - 1)
            run.sign()
    start = ledgers()[0]
    assert run.alice.turn_num == run.bob.turn_num == start.turn_num + len(expected)
    final: LedgerOutcome = start.outcome
    for proposal in expected:
        final = apply_proposal(final, proposal)
    assert run.alice.outcome == run.bob.outcome == final
    assert run.alice.consensus() == run.bob.consensus()
    verify_signed_state(run.alice.consensus())
    assert ledger_unacknowledged(run.alice) == ()
    assert run.bob.queue == ()
    assert run.bob.buffered == ()


@settings(max_examples=80, deadline=None)
@given(expected=proposal_sequences(), probes=st.lists(st.integers(0, 12), max_size=6))
def test_outcomes_match_a_plain_model(expected: list[Proposal], probes: list[int]) -> None:
    """Guarantees found by bisection and inserted in place, and the cached exit and
    states, are what a list searched and sorted afresh gives."""
    channel = ledgers()[0]
    outcome = channel.outcome
    model: dict[bytes, Guarantee] = {}
    for proposal in expected:
        outcome = apply_proposal(outcome, proposal)
        if isinstance(proposal, Remove):
            del model[proposal.target]
        else:
            model[proposal.guarantee.target] = proposal.guarantee
        assert outcome.guarantees == tuple(model[t] for t in sorted(model))
        for number in probes:
            assert outcome.guarantee_of(target(number)) == model.get(target(number))
        allocations = outcome.to_exit()[0].allocations[2:]
        assert allocations == tuple(g.to_allocation() for g in outcome.guarantees)
        fresh = State(channel.fixed, b"", outcome.to_exit(), 7, False)
        assert outcome.state(channel.fixed, 7) == fresh
        assert outcome.state(channel.fixed, 7) is outcome.state(channel.fixed, 7)
        assert state_hash(outcome.state(channel.fixed, 7)) == state_hash(fresh)
