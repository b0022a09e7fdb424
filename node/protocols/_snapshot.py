"""What an objective sees of its channel: a small frozen view filled by the engine.

The derivation module owns channel state (DESIGN.md, data flow rule 3); the
engine copies the few fields objectives need from its ChannelView into a
``ChannelSnapshot`` before each crank. Objectives never keep their own copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.core import FixedPart, SignedState, channel_id, to_checksum_address
from node.core.errors import InvalidValueError


@dataclass(frozen=True)
class ChannelSnapshot:
    """One channel as the derivation module last saw it.

    Attributes:
        channel_id: the channel's id (must match ``fixed``).
        fixed: the channel's fixed part.
        latest_signed: by participant index, the latest state that participant
            signed (with every signature known on it), or None.
        supported: the latest state signed by every participant, or None.
        holdings: ``(asset, amount)`` pairs held by the adjudicator, sorted by asset;
            an asset not listed holds nothing.
        finalizes_at: unix seconds at which a challenge or conclusion finalizes;
            0 when the channel is neither challenged nor concluded.
        challenge: the candidate of the challenge registered on chain (None: none, or
            it was cleared): the state the channel finalizes with.
        concluded: the channel was concluded on chain with a final state.
        reclaims: guarantees reclaimed out of this channel on chain so far.
    """

    channel_id: bytes
    fixed: FixedPart
    latest_signed: tuple[SignedState | None, ...]
    supported: SignedState | None
    holdings: tuple[tuple[str, int], ...]
    finalizes_at: int = 0
    challenge: SignedState | None = None
    concluded: bool = False
    reclaims: int = 0

    def __init__(
        self,
        fixed: FixedPart,
        latest_signed: Iterable[SignedState | None] | None = None,
        supported: SignedState | None = None,
        holdings: Mapping[str, int] | Iterable[tuple[str, int]] = (),
        finalizes_at: int = 0,
        *,
        challenge: SignedState | None = None,
        concluded: bool = False,
        reclaims: int = 0,
    ) -> None:
        count = len(fixed.participants)
        latest = tuple(latest_signed) if latest_signed is not None else (None,) * count
        if len(latest) != count:
            raise InvalidValueError(
                "latest_signed", f"{len(latest)} entries for {count} participants"
            )
        for index, signed in enumerate(latest):
            if signed is not None and signed.state.fixed != fixed:
                raise InvalidValueError(f"latest_signed[{index}]", "a state of another channel")
        if supported is not None and supported.state.fixed != fixed:
            raise InvalidValueError("supported", "a state of another channel")
        pairs = holdings.items() if isinstance(holdings, Mapping) else holdings
        merged: dict[str, int] = {}
        for asset, amount in pairs:
            checked = to_checksum_address(asset, "holdings.asset")
            if type(amount) is not int or amount < 0:
                raise InvalidValueError(f"holdings[{checked}]", f"bad amount {amount!r}")
            merged[checked] = amount
        setter = object.__setattr__
        setter(self, "channel_id", channel_id(fixed))
        setter(self, "fixed", fixed)
        setter(self, "latest_signed", latest)
        setter(self, "supported", supported)
        setter(self, "holdings", tuple(sorted(merged.items())))
        setter(self, "finalizes_at", finalizes_at)
        if challenge is not None and challenge.state.fixed != fixed:
            raise InvalidValueError("challenge", "a state of another channel")
        setter(self, "challenge", challenge)
        setter(self, "concluded", concluded)
        setter(self, "reclaims", reclaims)

    def holding(self, asset: str) -> int:
        """What the adjudicator holds for this channel in ``asset`` (0 if nothing)."""
        checked = to_checksum_address(asset, "asset")
        for held_asset, amount in self.holdings:
            if held_asset == checked:
                return amount
        return 0

    def latest_signed_by(self, index: int) -> SignedState | None:
        """The latest state participant ``index`` signed, or None."""
        return self.latest_signed[index]

    def finalized(self, chain_time_s: int) -> bool:
        """Whether a challenge or conclusion has finalized the channel at ``chain_time_s``."""
        return self.finalizes_at != 0 and self.finalizes_at <= chain_time_s

    @property
    def paid_out(self) -> bool:
        """Whether the adjudicator holds nothing for the channel any more."""
        return all(amount == 0 for _, amount in self.holdings)
