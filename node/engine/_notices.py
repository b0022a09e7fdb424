"""What the loop tells the API after a step: channels that changed, objectives that ended.

Notifications go out only once the step that caused them is durable, read from the
views the module derives then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from node.derive import Deriver
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import JsonObject, ViewCache, ledger_channel_info, payment_channel_info
from node.protocols import DirectDefund, DirectFund, ObjectiveId

logger = logging.getLogger("node.engine")

Notify = Callable[[str, Mapping[str, Any]], object]


class NoticesMixin:
    """The engine's notifications (mixed into ``Engine``, which provides the state)."""

    address: str
    notify: Notify | None
    wanted: Callable[[str], bool]
    state: EngineState
    views: ViewCache
    deriver: Deriver
    objective_info: Callable[[ObjectiveId], JsonObject]
    _finished: Callable[[ObjectiveId], None]
    _forget_objective: Callable[[ObjectiveId], None]

    def _notify(self, step: Step) -> None:
        """Publish what the durable step changed; wake whoever waits on an objective."""
        if self._wanted("payment_channel_updated") or self._wanted("ledger_channel_updated"):
            self._notify_channels(step)
        for objective_id in sorted(step.changed, key=str):
            entry = self.state.entry(objective_id)
            if entry is None or entry.running:
                continue
            if isinstance(entry.objective, DirectFund | DirectDefund):
                step.ledgers_changed = True
            name = "objective_completed" if entry.failure is None else "objective_failed"
            if self._wanted(name):
                self._publish(name, self.objective_info(objective_id))
            self._finished(objective_id)
            self._forget_objective(objective_id)

    def _notify_channels(self, step: Step) -> None:
        """The views of the channels the step touched, to whoever takes them."""
        touched = set(step.touched)
        touched.update(objective_id.channel_id for objective_id in step.changed)
        for channel in sorted(touched):
            snapshot = self.views.snapshot(channel)
            if snapshot is None:
                continue
            name, info = (
                ("payment_channel_updated", payment_channel_info)
                if self.views.is_virtual(snapshot)
                else ("ledger_channel_updated", ledger_channel_info)
            )
            if self._wanted(name) and (view := self.deriver.channel(channel)) is not None:
                self._publish(name, info(view, self.address))

    def _wanted(self, method: str) -> bool:
        return self.notify is not None and self.wanted(method)

    def _publish(self, method: str, params: Mapping[str, object]) -> None:
        if self.notify is not None:
            self.notify(method, params)
