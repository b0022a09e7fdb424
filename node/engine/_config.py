"""What the engine is told at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from node.core.constants import (
    engine_challenge_duration_s_default,
    engine_objective_expiry_s,
    engine_snapshot_interval_records,
    engine_tx_retry_ms,
)
from node.protocols import ApprovalPolicy, PolicyLimits


@dataclass(frozen=True)
class EngineConfig:
    """What the engine is told at start.

    Attributes:
        consensus_app: the ConsensusApp's address (ledger channels' app).
        policy: decides on objectives peers propose.
        confirmations: blocks an event needs before it is logged.
        start_block: first block to watch on a fresh log.
        tx_retry_ms: wait before a refused transaction is asked for again.
        payment_app: the VirtualPaymentApp's address ("": no virtual channels).
        snapshot_interval_records: records between two snapshots of the state.
        challenge_duration_s: the challenge duration of the channels this node proposes
            when the caller names none.
        limits: the bounds this node's own proposals keep to (the challenge duration: a
            channel it proposes must be one it would accept from a peer).
        watchtower: serve as a watchtower: keep what clients hand over, answer stale
            challenges of their channels from this node's chain key.
        watchtower_clients: the clients a watchtower serves (None: any peer).
        objective_expiry_s: a peer's proposal still in its setup after this long is
            given up.
    """

    consensus_app: str
    policy: ApprovalPolicy
    confirmations: int = 0
    start_block: int = 0
    tx_retry_ms: int = engine_tx_retry_ms
    payment_app: str = ""
    snapshot_interval_records: int = engine_snapshot_interval_records
    challenge_duration_s: int = engine_challenge_duration_s_default
    limits: PolicyLimits = field(default_factory=PolicyLimits)
    watchtower: bool = False
    watchtower_clients: frozenset[str] | None = None
    objective_expiry_s: int = engine_objective_expiry_s

    def __post_init__(self) -> None:
        assert self.confirmations >= 0
        assert self.snapshot_interval_records > 0
