"""What a crank reads: one frozen view the engine fills from derived state.

The derivation module owns channel state (DESIGN.md, data flow rule 3); before
each crank the engine copies what the objective needs into an ``ObjectiveView``.
Every objective kind reads the same type: a funding objective its channel, a
virtual one also the ledgers next to us on the path, a settlement also the
channels its ledger guarantees, our largest vouchers and the chain's time; a
watchtower's guard what the client handed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from node.core import Voucher
from node.protocols._ledger import LedgerChannel
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._watch import WatchedChannel


@dataclass(frozen=True)
class ObjectiveView:
    """An objective's channel and what else its crank may read.

    Attributes:
        channel: the objective's channel as the derivation module last saw it.
        left_ledger: our ledger with the participant before us on a virtual
            channel's path (None for the payer, or when not asked for).
        right_ledger: our ledger with the participant after us (None for the payee).
        guaranteed: the channels the ledger ``channel`` guarantees, by id (settlement).
        vouchers: the largest voucher we received on each of those channels.
        chain_time_s: the timestamp of the latest block the chain watcher reported.
        watched: as a watchtower, a channel it guards for its clients.
    """

    channel: ChannelSnapshot
    left_ledger: LedgerChannel | None = None
    right_ledger: LedgerChannel | None = None
    guaranteed: Mapping[bytes, ChannelSnapshot] = field(default_factory=dict)
    vouchers: Mapping[bytes, Voucher] = field(default_factory=dict)
    chain_time_s: int = 0
    watched: WatchedChannel | None = None
