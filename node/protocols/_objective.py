"""Any objective: the union of the kinds and pure dispatch of update and crank.

Virtual-channel objectives have a union of their own: their crank also reads
the ledgers next to us on the path (a ``VirtualSnapshot``).
"""

from __future__ import annotations

from typing import assert_never

from node.core import Signer
from node.protocols._directdefund import DirectDefund, crank_direct_defund, update_direct_defund
from node.protocols._directfund import DirectFund, crank_direct_fund, update_direct_fund
from node.protocols._effects import CrankResult, Event, VirtualCrankResult
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._virtual import VirtualSnapshot
from node.protocols._virtualdefund import (
    VirtualDefund,
    crank_virtual_defund,
    update_virtual_defund,
)
from node.protocols._virtualfund import VirtualFund, crank_virtual_fund, update_virtual_fund

Objective = DirectFund | DirectDefund
VirtualObjective = VirtualFund | VirtualDefund


def update(objective: Objective, event: Event) -> Objective:
    """``objective`` after ``event`` (see each kind's update for what it checks).

    Raises:
        PeerStateError: a peer's state breaks the protocol.
        ProtocolError: an event that does not belong to the objective.
    """
    match objective:
        case DirectFund():
            return update_direct_fund(objective, event)
        case DirectDefund():
            return update_direct_defund(objective, event)
        case _:
            assert_never(objective)


def crank(
    objective: Objective, snapshot: ChannelSnapshot, signer: Signer
) -> CrankResult[Objective]:
    """One step of ``objective``: effects due now and the pause point.

    Raises:
        ProtocolError: the snapshot or signer is not the objective's.
    """
    match objective:
        case DirectFund():
            return crank_direct_fund(objective, snapshot, signer)
        case DirectDefund():
            return crank_direct_defund(objective, snapshot, signer)
        case _:
            assert_never(objective)


def update_virtual(objective: VirtualObjective, event: Event) -> VirtualObjective:
    """``objective`` after ``event`` (see each kind's update for what it checks).

    Raises:
        PeerStateError: a peer's state breaks the protocol.
        ProtocolError: an event that does not belong to the objective.
    """
    match objective:
        case VirtualFund():
            return update_virtual_fund(objective, event)
        case VirtualDefund():
            return update_virtual_defund(objective, event)
        case _:
            assert_never(objective)


def crank_virtual(
    objective: VirtualObjective, snapshot: VirtualSnapshot, signer: Signer
) -> VirtualCrankResult[VirtualObjective]:
    """One step of a virtual-channel objective: effects due now and the pause point.

    Raises:
        ProtocolError: the snapshot or signer is not the objective's, or a ledger
            next to us on the path is missing or cannot take the change.
    """
    match objective:
        case VirtualFund():
            return crank_virtual_fund(objective, snapshot, signer)
        case VirtualDefund():
            return crank_virtual_defund(objective, snapshot, signer)
        case _:
            assert_never(objective)
