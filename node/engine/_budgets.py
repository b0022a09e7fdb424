"""What a hostile peer can cost the engine, bounded (docs/adr/0008-hostile-peers.md).

* Backlog: our messages a peer has not acknowledged. Beyond its budget, new work
  with that peer is refused (API commands, its proposals) and the transport drops
  it for a while; what is logged stays queued and goes out once it acknowledges.
* Advice: a rejection is sent back only while the peer keeps up, a few per step.
* Rejected records: a few per peer per window; the rest are counted, and one
  summary record says how many were left out.
* Objectives: peers' proposals running at once are capped per peer and in all, and
  one that never got past its setup expires with a logged decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from node.core import address_from_bytes, address_to_bytes, constants
from node.engine._clock import engine_clock
from node.engine._config import EngineConfig
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import PeerMessages
from node.engine._records import decision_record, rejected_record
from node.engine._state import EngineState, Entry
from node.engine._step import Step
from node.engine._transport import Transport
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    DirectFund,
    DirectFundWaitingFor,
    VirtualFund,
    VirtualFundWaitingFor,
)

logger = logging.getLogger("node.engine")

_WINDOWS_KEPT_MAX: Final = 1_024  # peers whose rejection window is remembered


@dataclass
class _Window:
    """Rejections of one peer in the current window."""

    started: float
    logged: int = 0
    left_out: int = 0


class BudgetsMixin:
    """The engine's budgets against hostile peers (mixed into ``Engine``)."""

    config: EngineConfig
    state: EngineState
    transport: Transport | None
    _log: Callable[[Step, log_pb2.LogRecord], None]

    def _init_budgets(self) -> None:
        self._rejection_windows: dict[str, _Window] = {}
        self._over_backlog: set[str] = set()  # peers told to go away until they catch up
        self._deferred: list[PeerMessages] = []  # envelopes a step had no time for
        self._deferred_envelopes: dict[str, int] = {}

    # ------------------------------------------------------------------ step time

    def _out_of_time(self, step: Step, peer: str, running_s: float) -> bool:
        """Whether this step has spent its time on ``peer``'s payloads (or on all peers'),
        ``running_s`` counting the envelopes handled so far in the current input."""
        mine = step.peer_time_s.get(peer, 0.0) + running_s
        if mine >= self._peer_step_budget_ms(peer) / 1000:
            return True
        everyone = sum(step.peer_time_s.values()) + running_s
        return everyone >= constants.engine_peers_step_budget_ms / 1000

    def _peer_step_budget_ms(self, peer: str) -> int:
        """A peer's time in a step: less for one whose inputs we keep refusing."""
        window = self._rejection_windows.get(peer)
        if window is None or window.left_out == 0:
            return constants.engine_peer_step_budget_ms
        if engine_clock().elapsed_s() - window.started >= constants.engine_rejection_window_s:
            return constants.engine_peer_step_budget_ms  # a new window starts clean
        return constants.engine_refused_peer_step_budget_ms

    def _all_refused(self, inputs: Iterable[object]) -> bool:
        """Whether ``inputs`` are only envelopes of peers whose input we keep refusing."""
        return all(
            isinstance(item, PeerMessages)
            and self._peer_step_budget_ms(item.sender)
            == constants.engine_refused_peer_step_budget_ms
            for item in inputs
        )

    def _defer(self, item: PeerMessages) -> None:
        """Keep envelopes for the next step; beyond a peer's bound they are released to
        the transport (the peer sends them again: they are not acknowledged)."""
        peer = item.sender
        held = self._deferred_envelopes.get(peer, 0)
        room = max(0, constants.engine_deferred_envelopes_max - held)
        kept, dropped = item.envelopes[:room], item.envelopes[room:]
        if dropped and self.transport is not None:
            self.transport.release(peer, [envelope.id for envelope in dropped])
        if kept:
            if not item.own_arena:
                # A few envelopes of each of many frames would keep every frame whole:
                # a flood made 4,096 deferred envelopes hold ~300 MiB.
                kept = tuple(wire_pb2.Frame(messages=kept).messages)
            self._deferred.append(PeerMessages(peer, kept, own_arena=True))
            self._deferred_envelopes[peer] = held + len(kept)

    def _take_deferred(self) -> list[PeerMessages]:
        """The envelopes earlier steps had no time for, oldest first (taken)."""
        taken, self._deferred = self._deferred, []
        self._deferred_envelopes.clear()
        return taken

    # ------------------------------------------------------------------ backlog

    def _backlog_problem(self, peer: str) -> str | None:
        """Why no new work goes to ``peer`` (None: it keeps up)."""
        count, size = self.state.backlog(address_to_bytes(peer))
        if count >= constants.engine_peer_backlog_messages_max:
            return f"{peer} has not acknowledged {count} of our messages"
        if size >= constants.engine_peer_backlog_bytes_max:
            return f"{peer} has not acknowledged {size} bytes of our messages"
        return None

    def _check_backlogs(self, peers: Iterable[str]) -> None:
        """Refuse an API command that would send to a peer over its backlog budget.

        Raises:
            CommandRefusedError: one of ``peers`` is over its budget.
        """
        for peer in peers:
            problem = self._backlog_problem(peer)
            if problem is not None:
                raise CommandRefusedError(Refusal.UNAVAILABLE, f"{problem}: try again later")

    def _peers_over_backlog(self, step: Step) -> list[str]:
        """Peers this step's messages put over their backlog budget (each named once
        until it is under the budget again)."""
        found = []
        for peer in list(self._over_backlog):
            if self._backlog_problem(peer) is None:
                self._over_backlog.discard(peer)
        for recipient in step.messages:
            peer = address_from_bytes(recipient)
            if peer not in self._over_backlog and self._backlog_problem(peer) is not None:
                self._over_backlog.add(peer)
                found.append(peer)
        return found

    # ------------------------------------------------------------------ advice

    def _may_advise(self, step: Step, peer: str) -> bool:
        """Whether a rejection may go back to ``peer`` in this step."""
        count, _ = self.state.backlog(address_to_bytes(peer))
        if count >= constants.engine_advice_backlog_max:
            return False
        sent = step.advice.get(peer, 0)
        if sent >= constants.engine_rejections_per_peer_step_max:
            return False
        step.advice[peer] = sent + 1
        return True

    # ------------------------------------------------------------------ rejected records

    def _log_rejection(self, step: Step, peer: str, problem: str, raw: bytes) -> bool:
        """Log a peer's input refused, within the peer's budget; returns whether it was
        logged (the caller's log line follows the same budget)."""
        now = engine_clock().elapsed_s()
        window = self._rejection_windows.get(peer)
        if window is None or now - window.started >= constants.engine_rejection_window_s:
            if window is not None and window.left_out:
                self._log_left_out(step, peer, window.left_out)
            if len(self._rejection_windows) >= _WINDOWS_KEPT_MAX:
                self._forget_old_windows(now)
            window = self._rejection_windows[peer] = _Window(now)
        if window.logged >= constants.engine_rejections_logged_per_window:
            window.left_out += 1
            return False
        window.logged += 1
        reason = problem[: constants.engine_rejection_reason_chars_max]
        source = log_pb2.REJECTION_SOURCE_PEER
        self._log(step, rejected_record(source, reason, raw, address_to_bytes(peer)))
        return True

    def _log_left_out(self, step: Step, peer: str, count: int) -> None:
        logger.warning("%d more rejections of %s's input were not logged", count, peer)
        reason = f"{count} more rejections in {constants.engine_rejection_window_s} s not logged"
        source = log_pb2.REJECTION_SOURCE_PEER
        self._log(step, rejected_record(source, reason, b"", address_to_bytes(peer)))

    def _forget_old_windows(self, now: float) -> None:
        window_s = constants.engine_rejection_window_s
        for peer, window in list(self._rejection_windows.items()):
            if now - window.started >= window_s and not window.left_out:
                del self._rejection_windows[peer]
        while len(self._rejection_windows) >= _WINDOWS_KEPT_MAX:
            del self._rejection_windows[next(iter(self._rejection_windows))]

    # ------------------------------------------------------------------ objectives

    def _proposals_problem(self, peer: str) -> str | None:
        """Why ``peer`` may not start one more objective now (None: it may)."""
        mine = total = 0
        for _, entry in self.state.running_entries():
            if entry.proposer is None:
                continue
            total += 1
            mine += entry.proposer == peer
        if mine >= constants.engine_peer_objectives_max:
            return f"{peer} runs {mine} objectives with this node already"
        if total >= constants.engine_peer_objectives_total_max:
            return f"this node runs {total} objectives peers proposed already"
        return self._backlog_problem(peer)

    def _expire_objectives(self, step: Step) -> None:
        """Give up peers' proposals that never got past their setup."""
        now_ms = engine_clock().wall_ms()
        expiry_ms = self.config.objective_expiry_s * 1000
        for objective_id, entry in list(self.state.running_entries()):
            if entry.proposer is None or now_ms - entry.created_ms < expiry_ms:
                continue
            if not _stuck_in_setup(entry):
                continue
            stage = entry.waiting_for.value if entry.waiting_for else "its start"
            reason = f"expired: no further than {stage} after {self.config.objective_expiry_s} s"
            logger.warning("%s proposed by %s %s", objective_id, entry.proposer, reason)
            self._log(step, decision_record(objective_id, approved=False, reason=reason))
            step.changed.add(objective_id)


def _stuck_in_setup(entry: Entry) -> bool:
    """Whether a running objective committed nothing yet: no deposit of ours, no ledger
    funds locked for it."""
    objective, waiting = entry.objective, entry.waiting_for
    if isinstance(objective, DirectFund):
        early = waiting in (
            DirectFundWaitingFor.COMPLETE_PREFUND,
            DirectFundWaitingFor.MY_TURN_TO_FUND,
        )
        return early and not objective.deposits_submitted
    if isinstance(objective, VirtualFund):
        return waiting is VirtualFundWaitingFor.COMPLETE_PREFUND
    return False
