"""Yamux receive credit returned in batches, as go-yamux returns it.

py-libp2p 0.8.1 sends a WINDOW_UPDATE frame after every read of a Yamux stream: each
message a node receives costs it a frame, a Noise encryption and a socket write, and
costs the sender a frame to read and decrypt. In ``scripts/bench_hub.py`` seven in ten
frames a node wrote were window updates. go-yamux credits the sender only once the
reader has consumed half of its receive window; ``install`` makes py-libp2p's streams do
the same. The window itself stays at Yamux's 256 KiB (no auto-tuning), so a sender
never waits on credit while the reader keeps reading, and a reader that stops reading
stops the sender at 256 KiB as before.
"""

from __future__ import annotations

from libp2p.stream_muxer.yamux.yamux import YamuxStream

_installed = False


async def _credit_in_batches(self: YamuxStream, *, bytes_read: int = 0) -> None:
    """After a read: return the credit of what was consumed once it reaches half the
    window (``bytes_read`` is already counted: the stream's buffer shrank by it)."""
    async with self.window_lock:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        consumed = self.target_recv_window - (self.recv_window + buffered)
        if consumed < self.target_recv_window // 2:
            return
        self.recv_window += consumed
    # Outside the lock: an inbound WINDOW_UPDATE needs it meanwhile (as py-libp2p does).
    await self.send_window_update(consumed, skip_lock=True)


def install() -> None:
    """Make every Yamux stream of this process credit in batches (idempotent)."""
    global _installed
    if not _installed:
        YamuxStream._auto_tune_and_send_window_update = _credit_in_batches  # type: ignore[method-assign]
        _installed = True
