"""The dashboard's side in the node: ``get_dashboard`` and the live ``payment_stats``.

The page itself (node/rpc/dashboard.html) is static; everything it shows comes through
the token-guarded API: ``get_dashboard`` for channels, peers, objectives and the log's
tail, ``query_sql`` for its SQL box, and the ``payment_stats`` notification the node
pushes over the WebSocket every ``dashboard_interval_ms`` while anyone listens.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import trio

from node.core.constants import (
    dashboard_interval_ms,
    dashboard_log_tail_max,
    dashboard_rate_window_s,
)
from node.engine._queries import PaymentTotals
from node.rpc import JsonValue, MethodRegistry

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from node.engine._engine import Engine

PAYMENT_STATS = "payment_stats"


@dataclass(frozen=True)
class _Sample:
    at_s: float
    vouchers: int
    moved: int  # paid + received


class Dashboard:
    """Reads what the dashboard shows, and pushes the payment figures while it is open.

    Args:
        engine: the node's engine.
        publish: sends a notification to the WebSocket subscribers (the RPC server's).
        subscribers: how many WebSocket subscribers are attached now.
        peers: the peer store's records as JSON (empty until libp2p has joined).
        node_info: the node's facts (address, peer id, module, ...).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        publish: Callable[[str, Mapping[str, JsonValue]], int],
        subscribers: Callable[[], int],
        peers: Callable[[], list[JsonValue]],
        node_info: Callable[[], dict[str, JsonValue]],
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._subscribers = subscribers
        self._peers = peers
        self._node_info = node_info
        window = dashboard_rate_window_s * 1000 // dashboard_interval_ms + 1
        self._samples: collections.deque[_Sample] = collections.deque(maxlen=window)

    async def state(self) -> dict[str, JsonValue]:
        """Everything the page shows but the SQL box, read now."""
        channels = await self._engine.channels_overview()
        totals = await self._engine.payment_totals()
        return {
            "node": self._node_info(),
            "ledger_channels": channels["ledger_channels"],  # type: ignore[dict-item]
            "payment_channels": channels["payment_channels"],  # type: ignore[dict-item]
            "payments": self._figures(totals),
            "peers": self._peers(),
            "objectives": await self._engine.running_objectives(),  # type: ignore[dict-item]
            "log_tail": await self._engine.log_tail(dashboard_log_tail_max),  # type: ignore[dict-item]
        }

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Every ``dashboard_interval_ms``, while anyone listens, push ``payment_stats``."""
        task_status.started()
        while True:
            await trio.sleep(dashboard_interval_ms / 1000)
            if self._subscribers() == 0:
                self._samples.clear()  # the rate restarts with the next listener
                continue
            totals = await self._engine.payment_totals()
            self._publish(PAYMENT_STATS, self._figures(totals))

    def _figures(self, totals: PaymentTotals) -> dict[str, JsonValue]:
        """Totals, and their rates over the last ``dashboard_rate_window_s``."""
        now = _Sample(time.monotonic(), totals.vouchers, totals.paid + totals.received)
        if not self._samples or now.at_s - self._samples[-1].at_s >= dashboard_interval_ms / 2000:
            self._samples.append(now)
        oldest = self._samples[0]
        elapsed_s = now.at_s - oldest.at_s
        rate = (now.vouchers - oldest.vouchers) / elapsed_s if elapsed_s > 0 else 0.0
        amount_rate = (now.moved - oldest.moved) / elapsed_s if elapsed_s > 0 else 0.0
        return {
            "payment_channels": totals.channels,
            "vouchers": totals.vouchers,
            "paid": str(totals.paid),
            "received": str(totals.received),
            "vouchers_per_s": round(rate, 2),
            "amount_per_s": str(round(amount_rate)),
            "time_ms": int(time.time() * 1000),
        }


def register_dashboard_methods(registry: MethodRegistry, dashboard: Dashboard) -> None:
    """Add ``get_dashboard`` to ``registry``."""

    async def get_dashboard() -> JsonValue:
        return await dashboard.state()

    registry.register(
        "get_dashboard",
        get_dashboard,
        description="What the dashboard shows: the node, channels and balances, payment"
        " totals and rates, peers, objectives waiting, the log's tail.",
    )
