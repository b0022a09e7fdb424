"""Pause points: one enum per objective kind, each with an explicit ``DONE``.

A failure is never a pause point: it raises. The pause point is recomputed on
every crank from the objective and the channel snapshot, never stored.
"""

from __future__ import annotations

import enum
from typing import assert_never


class DirectFundWaitingFor(enum.Enum):
    """Where a DirectFund objective stands."""

    COMPLETE_PREFUND = "COMPLETE_PREFUND"  # every participant's prefund signature
    MY_TURN_TO_FUND = "MY_TURN_TO_FUND"  # holdings to reach my deposit threshold
    COMPLETE_FUNDING = "COMPLETE_FUNDING"  # holdings to cover the whole outcome
    COMPLETE_POSTFUND = "COMPLETE_POSTFUND"  # every participant's postfund signature
    DONE = "DONE"


class DirectDefundWaitingFor(enum.Enum):
    """Where a DirectDefund objective stands."""

    FINALIZATION = "FINALIZATION"  # every participant's signature on the final state
    WITHDRAW = "WITHDRAW"  # the adjudicator to pay out every holding
    DONE = "DONE"


class VirtualFundWaitingFor(enum.Enum):
    """Where a VirtualFund objective stands."""

    COMPLETE_PREFUND = "COMPLETE_PREFUND"  # every participant's prefund signature
    COMPLETE_FUNDING = "COMPLETE_FUNDING"  # my ledgers' consensus to hold the guarantee
    COMPLETE_POSTFUND = "COMPLETE_POSTFUND"  # payer and payee: every postfund signature
    DONE = "DONE"


class VirtualDefundWaitingFor(enum.Enum):
    """Where a VirtualDefund objective stands."""

    FINALIZATION = "FINALIZATION"  # every participant's signature on the final state
    DEFUNDING = "DEFUNDING"  # my ledgers' consensus to drop the guarantee
    DONE = "DONE"


class SettleWaitingFor(enum.Enum):
    """Where a Settle objective stands."""

    CHALLENGES = "CHALLENGES"  # our challenges and conclusions to be registered on chain
    FINALIZATION = "FINALIZATION"  # the chain's time to pass every finalization time
    RECLAIM = "RECLAIM"  # the next guarantee to be reclaimed into the ledger
    PAYOUT = "PAYOUT"  # the ledger's holdings to be paid out
    DONE = "DONE"


class DefendWaitingFor(enum.Enum):
    """Where a Defend objective stands."""

    CLEARED = "CLEARED"  # our checkpoint to clear the stale challenge on chain
    DONE = "DONE"


WaitingFor = (
    DirectFundWaitingFor
    | DirectDefundWaitingFor
    | VirtualFundWaitingFor
    | VirtualDefundWaitingFor
    | SettleWaitingFor
    | DefendWaitingFor
)


def is_done(waiting_for: WaitingFor) -> bool:
    """Whether ``waiting_for`` is the end of its objective."""
    match waiting_for:
        case DirectFundWaitingFor():
            return waiting_for is DirectFundWaitingFor.DONE
        case DirectDefundWaitingFor():
            return waiting_for is DirectDefundWaitingFor.DONE
        case VirtualFundWaitingFor():
            return waiting_for is VirtualFundWaitingFor.DONE
        case VirtualDefundWaitingFor():
            return waiting_for is VirtualDefundWaitingFor.DONE
        case SettleWaitingFor():
            return waiting_for is SettleWaitingFor.DONE
        case DefendWaitingFor():
            return waiting_for is DefendWaitingFor.DONE
        case _:
            assert_never(waiting_for)
