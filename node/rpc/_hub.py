"""Fan-out of notifications to WebSocket subscribers, each behind a bounded queue."""

from __future__ import annotations

import re
from collections.abc import Mapping

import trio

from node.core import constants
from node.rpc._json import JsonValue, encode_json

_NOTIFICATION_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_notification_name(name: str) -> str:
    """Return ``name`` if it is a lower_snake_case notification name.

    Raises:
        ValueError: it is not.
    """
    if not _NOTIFICATION_NAME.fullmatch(name):
        raise ValueError(f"notification name {name[:64]!r}: use lower_snake_case, <= 64 chars")
    return name


class Subscription:
    """One subscriber's queue of serialised notifications and the scope of its connection."""

    def __init__(self, names: frozenset[str] | None, *, queue_max: int) -> None:
        assert queue_max > 0
        self.names = names
        self.send_channel, self.receive_channel = trio.open_memory_channel[str](queue_max)
        self.cancel_scope = trio.CancelScope()
        self.dropped_reason: str | None = None

    def wants(self, method: str) -> bool:
        """Whether this subscriber asked for notifications called ``method``."""
        return self.names is None or method in self.names


class NotificationHub:
    """Publishes notifications to subscribers; a subscriber that falls behind is dropped.

    ``publish`` never waits: the node's loop must not slow down for a slow client.
    """

    def __init__(self, *, queue_max: int = constants.rpc_subscriber_queue_max) -> None:
        if queue_max <= 0:
            raise ValueError(f"queue_max: {queue_max} is not positive")
        self._queue_max = queue_max
        self._subscriptions: list[Subscription] = []

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are attached now."""
        return len(self._subscriptions)

    def wanted(self, method: str) -> bool:
        """Whether any subscriber wants notifications called ``method`` now."""
        return any(subscription.wants(method) for subscription in self._subscriptions)

    def subscribe(self, names: frozenset[str] | None) -> Subscription:
        """Attach a subscriber to every notification (``None``) or to the given names."""
        subscription = Subscription(names, queue_max=self._queue_max)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Detach a subscriber (no-op if it was dropped already)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.send_channel.close()

    def publish(self, method: str, params: Mapping[str, JsonValue]) -> int:
        """Queue a JSON-RPC notification for each subscriber that wants it.

        Args:
            method: the notification name, e.g. ``objective_completed``.
            params: a JSON object.

        Returns:
            How many subscribers it was queued for.

        Raises:
            ValueError: a bad name, or params JSON cannot carry.
            TypeError: params hold a value JSON cannot carry.
        """
        check_notification_name(method)
        text = encode_json({"jsonrpc": "2.0", "method": method, "params": dict(params)})
        delivered = 0
        for subscription in list(self._subscriptions):
            if not subscription.wants(method):
                continue
            try:
                subscription.send_channel.send_nowait(text)
            except trio.WouldBlock:
                self._drop(subscription, f"more than {self._queue_max} notifications queued")
                continue
            delivered += 1
        return delivered

    def _drop(self, subscription: Subscription, reason: str) -> None:
        self.unsubscribe(subscription)
        subscription.dropped_reason = reason
        # trio-typing's stubs predate the reason argument that trio 0.35 takes.
        subscription.cancel_scope.cancel(reason=f"slow subscriber: {reason}")  # type: ignore[call-arg]
