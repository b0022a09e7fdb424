"""Bounds on what peers make the node spend: token buckets and a shared byte budget.

Pure bookkeeping, time passed in: the messenger reads the clock and decides what to
do (wait, reset a stream); tests drive these with any clock.
"""

from __future__ import annotations

from node.core.errors import PeerProtocolError


class TokenBucket:
    """A rate with a burst: ``take`` may go into debt, and says how long to pay it back.

    Args:
        rate_per_s: tokens added per second.
        burst: the most tokens held (a full bucket after a silence).
        now_s: the clock at creation (the bucket starts full).
    """

    def __init__(self, *, rate_per_s: float, burst: float, now_s: float) -> None:
        assert rate_per_s > 0
        assert burst > 0
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._updated_s = now_s

    def tokens(self, now_s: float) -> float:
        """Tokens held at ``now_s`` (negative: in debt)."""
        elapsed_s = max(0.0, now_s - self._updated_s)
        return min(self.burst, self._tokens + elapsed_s * self.rate_per_s)

    def take(self, amount: float, now_s: float) -> float:
        """Spend ``amount``; returns the seconds until the bucket is out of debt (0: none)."""
        assert amount >= 0
        self._tokens = self.tokens(now_s) - amount
        self._updated_s = max(self._updated_s, now_s)
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s

    def full(self, now_s: float) -> bool:
        """Whether the bucket is as after a long silence (nothing worth remembering)."""
        return self.tokens(now_s) >= self.burst


class ByteBudget:
    """Bytes that many holders share, up to a bound (unfinished frames of all peers)."""

    def __init__(self, bytes_max: int) -> None:
        assert bytes_max > 0
        self.bytes_max = bytes_max
        self.used = 0

    def resize(self, held: int, wanted: int) -> int:
        """A holder of ``held`` bytes asks to hold ``wanted``; returns what it holds now.

        Raises:
            PeerProtocolError: the growth would pass the bound (nothing is taken).
        """
        assert 0 <= held <= self.used
        assert wanted >= 0
        if wanted > held and self.used - held + wanted > self.bytes_max:
            raise PeerProtocolError(
                f"unfinished frames of all peers would hold {self.used - held + wanted} bytes "
                f"(bound {self.bytes_max})"
            )
        self.used += wanted - held
        assert 0 <= self.used <= self.bytes_max or wanted <= held
        return wanted
