"""The bounds a peer meets: token buckets, the unfinished-frame budget, the options."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import constants
from node.core.errors import InvalidValueError, PeerProtocolError
from node.p2p import MessengerOptions
from node.p2p._framing import FrameDecoder, encode_frame
from node.p2p._limits import ByteBudget, TokenBucket


def test_bucket_starts_full_and_goes_into_debt() -> None:
    bucket = TokenBucket(rate_per_s=100, burst=50, now_s=0.0)
    assert bucket.full(0.0)
    assert bucket.take(50, 0.0) == 0.0
    assert bucket.take(10, 0.0) == pytest.approx(0.1)  # 10 tokens of debt at 100/s
    assert bucket.tokens(0.1) == pytest.approx(0.0)
    assert bucket.take(0, 1.0) == 0.0
    assert bucket.tokens(10.0) == 50  # refills to the burst, never beyond
    assert bucket.full(10.0)


def test_bucket_ignores_a_clock_that_goes_back() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=10, now_s=5.0)
    bucket.take(10, 5.0)
    assert bucket.tokens(4.0) == 0  # no refill from the past
    assert bucket.take(1, 4.0) == pytest.approx(0.1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 5), st.integers(0, 500)), max_size=50),
    st.integers(1, 1000),
    st.integers(1, 1000),
)
def test_bucket_never_lets_more_than_rate_times_time_plus_burst(
    steps: list[tuple[float, int]], rate: int, burst: int
) -> None:
    """Whoever waits as told gets at most burst + rate x elapsed tokens."""
    bucket = TokenBucket(rate_per_s=rate, burst=burst, now_s=0.0)
    now = 0.0
    taken = 0
    for gap, amount in steps:
        now += gap
        wait = bucket.take(amount, now)
        taken += amount
        now += wait  # a throttled peer is not read until then
        assert wait >= 0
    assert taken <= burst + rate * now + 1e-6 * max(1, taken)


def test_budget_is_shared_and_given_back() -> None:
    budget = ByteBudget(100)
    first = budget.resize(0, 60)
    with pytest.raises(PeerProtocolError, match="bound 100"):
        budget.resize(0, 41)
    assert budget.used == 60
    second = budget.resize(0, 40)
    assert budget.used == 100
    assert budget.resize(first, 10) == 10  # shrinking always works
    assert budget.resize(second, 0) == 0
    assert budget.used == 10


def test_decoder_charges_only_its_unfinished_frame() -> None:
    budget = ByteBudget(1000)
    decoder = FrameDecoder(frame_bytes_max=800, budget=budget)
    frame = encode_frame([], [1, 2, 3])
    assert decoder.feed(frame + frame[:3]) == [frame[4:]]
    assert budget.used == 3
    assert decoder.feed(frame[3:]) == [frame[4:]]
    assert budget.used == 0
    decoder.feed((700).to_bytes(4, "big") + b"x" * 500)
    assert budget.used == 504
    other = FrameDecoder(frame_bytes_max=800, budget=budget)
    with pytest.raises(PeerProtocolError, match="unfinished frames"):
        other.feed((700).to_bytes(4, "big") + b"y" * 600)
    other.close()
    decoder.close()
    assert budget.used == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"peer_messages_per_s_max": 0}, "peer_messages_per_s_max"),
        ({"peer_bytes_per_s_max": -1}, "peer_bytes_per_s_max"),
        ({"frame_stall_ms_max": 0}, "frame_stall_ms_max"),
        ({"session_idle_ms": 0}, "session_idle_ms"),
        ({"unfinished_frame_bytes_max": 1024}, "unfinished_frame_bytes_max"),
    ],
)
def test_limit_options_are_checked(changes: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidValueError, match=field):
        MessengerOptions(**changes)


def test_limit_constants_hold_together() -> None:
    # A peer's rate lets the largest frame through, and an honest peer at the measured
    # full speed (bench_p2p: 43,759 messages/s of 200 bytes) is not slowed.
    assert constants.p2p_peer_bytes_per_s_max >= constants.frame_size_bytes_max
    assert constants.p2p_peer_messages_per_s_max >= 44_000
    assert constants.p2p_peer_bytes_per_s_max >= 44_000 * 260
    assert constants.p2p_unfinished_frame_bytes_max >= 4 * constants.frame_size_bytes_max
    assert constants.p2p_announcement_skew_ms_max < constants.p2p_announce_interval_ms
    assert constants.p2p_announcement_age_ms_max >= 3 * constants.p2p_announce_interval_ms
    assert constants.p2p_announcement_refresh_ms_min < constants.p2p_announce_interval_ms
    assert constants.p2p_handshakes_max < constants.p2p_connections_max
    assert constants.p2p_handshake_timeout_ms < constants.p2p_connection_silent_ms_max
    assert constants.p2p_session_idle_ms > constants.p2p_resend_timeout_ms
