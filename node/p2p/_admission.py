"""Admission of inbound connections, in place of py-libp2p's own.

py-libp2p 0.8.1 admits an inbound TCP connection by taking a slot of a
``CapacityLimiter`` (``max_connections - min_connections`` slots) and gives it
back only when the swarm stops, not when the connection closes: after that many
connections in a node's life, it refused every newcomer. A silent socket also held
its slot for the whole 10 s handshake timeout, so a few hundred of them, re-opened
as they were closed, locked honest peers out.

Here a connection holds a handshake slot only while it is in the Noise and Yamux
handshake, for at most ``p2p_handshake_timeout_ms``; when all ``p2p_handshakes_max``
slots are taken, a newcomer pushes out the oldest handshake (an honest one takes
milliseconds, so silent sockets are what gets pushed out). An upgraded connection
counts against ``p2p_connections_max`` until it closes.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from typing import Any

import trio
from libp2p.abc import IMuxedConn
from libp2p.network.connection.raw_connection import RawConnection
from multiaddr import Multiaddr

from node.core.constants import (
    p2p_connections_max,
    p2p_handshake_timeout_ms,
    p2p_handshakes_max,
)

logger = logging.getLogger("node.p2p.admission")

_CLOSE_TIMEOUT_S = 1.0
_CLOSED_POLL_S = 1.0


class InboundGate:
    """Admits inbound connections of one swarm (``install`` puts it in place).

    Args:
        swarm: the host's network (a py-libp2p ``Swarm``).
        handshakes_max: connections in the handshake at once.
        handshake_timeout_s: the time a connection has to finish its handshake.
        connections_max: upgraded connections at once (inbound and outbound).
    """

    def __init__(
        self,
        swarm: Any,
        *,
        handshakes_max: int = p2p_handshakes_max,
        handshake_timeout_s: float = p2p_handshake_timeout_ms / 1000,
        connections_max: int = p2p_connections_max,
    ) -> None:
        assert handshakes_max > 0
        assert handshake_timeout_s > 0
        assert connections_max > 0
        self._swarm = swarm
        self._handshakes_max = handshakes_max
        self._handshake_timeout_s = handshake_timeout_s
        self._connections_max = connections_max
        self._handshakes: OrderedDict[int, trio.CancelScope] = OrderedDict()
        self._keys = itertools.count()
        self.refused = 0  # connections refused at the cap
        self.pushed_out = 0  # handshakes ended to make room
        self.timed_out = 0  # handshakes not finished in time

    def install(self) -> None:
        """Handle the swarm's inbound connections from now on."""
        self._swarm._handle_inbound_connection = self.handle

    @property
    def handshaking(self) -> int:
        """Connections in the handshake now."""
        return len(self._handshakes)

    async def handle(self, read_write_closer: Any, maddr: Multiaddr) -> None:
        """The swarm's inbound handler: upgrade, then hold the socket until it closes."""
        raw = RawConnection(read_write_closer, False)
        if len(self._swarm.get_connections()) >= self._connections_max:
            self.refused += 1
            logger.info("refused an inbound connection: %d connections", self._connections_max)
            await _close_quietly(raw)
            return
        muxed = await self._upgrade(raw, maddr)
        if muxed is None:
            await _close_quietly(raw)
            return
        # The listener closes the socket when this returns: wait for the connection.
        await _wait_closed(muxed)

    async def _upgrade(self, raw: RawConnection, maddr: Multiaddr) -> IMuxedConn | None:
        if len(self._handshakes) >= self._handshakes_max:
            _, oldest = self._handshakes.popitem(last=False)
            oldest.cancel(reason="pushed out by a newer inbound connection")  # type: ignore[call-arg]
            self.pushed_out += 1
        key = next(self._keys)
        scope = trio.CancelScope(deadline=trio.current_time() + self._handshake_timeout_s)
        self._handshakes[key] = scope
        muxed: IMuxedConn | None = None
        try:
            with scope:
                muxed = await self._swarm.upgrade_inbound_raw_conn(raw, maddr)
        except Exception as error:  # a stranger's bytes: any upgrade failure
            logger.debug("inbound handshake failed: %r", error)
        finally:
            self._handshakes.pop(key, None)
        if muxed is None and scope.cancelled_caught:
            self.timed_out += 1
            logger.debug("inbound handshake ended unfinished (timeout or pushed out)")
        return muxed


async def _wait_closed(muxed: IMuxedConn) -> None:
    event = getattr(muxed, "event_closed", None)
    if isinstance(event, trio.Event):
        await event.wait()
        return
    # A muxer without the event (we configure Yamux only): poll.
    while not muxed.is_closed:  # noqa: ASYNC110 - no event to wait on
        await trio.sleep(_CLOSED_POLL_S)


async def _close_quietly(raw: RawConnection) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT_S):
        try:
            await raw.close()
        except Exception as error:  # closing a broken socket
            logger.debug("closing an inbound socket failed: %r", error)
