"""Ledger proposals: the changes a ledger channel's leader proposes, as values.

They stand apart from the ledger's rules (``_ledger.py``) so that effects can name
them without depending on those rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core import Guarantee


@dataclass(frozen=True)
class Add:
    """Lock funds for ``guarantee.target``: left pays ``left_deposit``, right the rest."""

    guarantee: Guarantee
    left_deposit: int


@dataclass(frozen=True)
class Remove:
    """Pay back the guarantee for ``target``: ``left_amount`` to left, the rest to right."""

    target: bytes
    left_amount: int


Proposal = Add | Remove


@dataclass(frozen=True)
class SignedProposal:
    """A proposal with one party's signature on the ledger state it yields.

    Attributes:
        ledger_id: the ledger channel's id.
        turn_num: the turn of the resulting ledger state.
        proposal: the change.
        signature: the leader's (proposing) or follower's (countersigning) signature.
    """

    ledger_id: bytes
    turn_num: int
    proposal: Proposal
    signature: bytes
