"""A funded ledger channel between Alice (leader) and Bob (follower), for ledger tests."""

from __future__ import annotations

from node.core import Guarantee, SignedState, State, address_to_destination, channel_id
from node.protocols import Add, LedgerChannel, Remove, new_ledger_channel
from tests.protocols.protocols_fakes import ALICE, BOB, NATIVE, ledger_fixed, simple_exit

FIXED = ledger_fixed()
LEDGER = channel_id(FIXED)
ALICE_DESTINATION = address_to_destination(ALICE.address)
BOB_DESTINATION = address_to_destination(BOB.address)
POSTFUND_STATE = State(FIXED, b"", (simple_exit(NATIVE, [(ALICE, 10), (BOB, 10)]),), 1, False)
POSTFUND = SignedState(
    POSTFUND_STATE, {0: ALICE.sign_state(POSTFUND_STATE), 1: BOB.sign_state(POSTFUND_STATE)}
)


def target(number: int) -> bytes:
    """The id of a (virtual) channel to guarantee."""
    return channel_id(ledger_fixed(nonce=1000 + number))


def add(number: int, amount: int, left_deposit: int, alice_left: bool = True) -> Add:
    left, right = (
        (ALICE_DESTINATION, BOB_DESTINATION) if alice_left else (BOB_DESTINATION, ALICE_DESTINATION)
    )
    return Add(Guarantee(target(number), amount, left, right), left_deposit)


def remove(number: int, left_amount: int) -> Remove:
    return Remove(target(number), left_amount)


def ledgers() -> tuple[LedgerChannel, LedgerChannel]:
    """(Alice's, Bob's) view of the freshly funded ledger."""
    return new_ledger_channel(POSTFUND, ALICE.address), new_ledger_channel(POSTFUND, BOB.address)
