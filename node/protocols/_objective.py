"""Any objective: one union of the kinds, and pure dispatch of ``update`` and ``crank``.

Every kind is cranked with the same ``ObjectiveView`` and answers with the same
``CrankResult``, whose effects come from one closed union; the engine knows no
kind-specific API.
"""

from __future__ import annotations

from typing import assert_never

from node.core import Signer
from node.protocols._defend import Defend, crank_defend, update_defend
from node.protocols._directdefund import DirectDefund, crank_direct_defund, update_direct_defund
from node.protocols._directfund import DirectFund, crank_direct_fund, update_direct_fund
from node.protocols._effects import CrankResult, Event
from node.protocols._guard import Guard, crank_guard, update_guard
from node.protocols._settle import Settle, crank_settle, update_settle
from node.protocols._view import ObjectiveView
from node.protocols._virtualdefund import (
    VirtualDefund,
    crank_virtual_defund,
    update_virtual_defund,
)
from node.protocols._virtualfund import VirtualFund, crank_virtual_fund, update_virtual_fund

Objective = DirectFund | DirectDefund | VirtualFund | VirtualDefund | Settle | Defend | Guard


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
        case VirtualFund():
            return update_virtual_fund(objective, event)
        case VirtualDefund():
            return update_virtual_defund(objective, event)
        case Settle():
            return update_settle(objective, event)
        case Defend():
            return update_defend(objective, event)
        case Guard():
            return update_guard(objective, event)
        case _:
            assert_never(objective)


def crank(objective: Objective, view: ObjectiveView, signer: Signer) -> CrankResult[Objective]:
    """One step of ``objective``: effects due now and the pause point.

    Raises:
        ProtocolError: the view or signer is not the objective's, or what the
            objective needs of its channels does not hold (see each kind's crank).
    """
    result: CrankResult[Objective]
    match objective:
        case DirectFund():
            result = crank_direct_fund(objective, view.channel, signer)
        case DirectDefund():
            result = crank_direct_defund(objective, view.channel, signer, view.chain_time_s)
        case VirtualFund():
            result = crank_virtual_fund(objective, view, signer)
        case VirtualDefund():
            result = crank_virtual_defund(objective, view, signer)
        case Settle():
            result = crank_settle(objective, view, signer)
        case Defend():
            result = crank_defend(objective, view, signer)
        case Guard():
            result = crank_guard(objective, view)
        case _:
            assert_never(objective)
    return result
