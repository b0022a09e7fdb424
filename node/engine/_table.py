"""The engine's objectives: what runs, what finished, rebuilt from the log on start.

Objectives hold no channel state (the derivation module does); an entry holds
the objective's parameters, the progress flags the log recorded (transactions
submitted) and the pause point of its last crank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from node.core import (
    State,
    fixed_part_from_proto,
    single_asset_exit_from_proto,
    state_from_proto,
    to_checksum_address,
)
from node.engine._records import TX_KIND_FROM_LOG
from node.proto import log_pb2
from node.protocols import (
    ChannelSnapshot,
    DirectDefund,
    DirectFund,
    Event,
    Objective,
    ObjectiveId,
    ObjectiveKind,
    TransactionFailed,
    TransactionSubmitted,
    VirtualDefund,
    VirtualObjective,
    WaitingFor,
    is_done,
    new_direct_defund,
    new_direct_fund,
    new_virtual_defund,
    new_virtual_fund,
    parse_objective_id,
    update,
)


@dataclass
class Entry:
    """One objective the node took part in.

    Attributes:
        objective: the objective after every event applied so far.
        waiting_for: the pause point of its last crank (None: not cranked yet).
        failure: why it failed (None while it runs or once done).
    """

    objective: Objective | VirtualObjective
    waiting_for: WaitingFor | None = None
    failure: str | None = None

    @property
    def done(self) -> bool:
        return self.waiting_for is not None and is_done(self.waiting_for)

    @property
    def running(self) -> bool:
        return self.failure is None and not self.done


@dataclass
class Replay:
    """What the log says about objectives, collected in one pass.

    Attributes:
        entries: objectives built so far, by id.
        defunds: closes whose objective is built from the channel once the
            derivation has caught up (its final state comes from the supported one).
        pending_events: transaction records of those closes, applied after building.
        refused: objectives a decision refused, with the reason.
        last_block: the last BlockProcessed block (None: none logged).
        last_event: (block, log_index) of the last adjudicator event logged.
    """

    entries: dict[ObjectiveId, Entry] = field(default_factory=dict)
    defunds: dict[ObjectiveId, list[Event]] = field(default_factory=dict)
    refused: dict[ObjectiveId, str] = field(default_factory=dict)
    last_block: int | None = None
    last_event: tuple[int, int] | None = None
    payment_app: str = ""
    virtual_closes: set[ObjectiveId] = field(default_factory=set)
    _last_state: dict[bytes, State] = field(default_factory=dict)


def tx_event(tx: log_pb2.SubmittedTransaction) -> Event | None:
    """The objective event a SubmittedTransaction record means (None: not an objective's)."""
    kind = TX_KIND_FROM_LOG.get(tx.tx_kind)
    if kind is None:
        return None
    asset = to_checksum_address(tx.asset, "asset") if tx.asset else None
    if tx.failed:
        return TransactionFailed(kind, tx.channel_id, asset)
    return TransactionSubmitted(kind, tx.channel_id, asset)


def replay_records(
    records: Iterable[log_pb2.LogRecord], me: str, consensus_app: str, payment_app: str = ""
) -> Replay:
    """Fold the engine's records into a ``Replay`` (channel state is the module's)."""
    replay = Replay(payment_app=payment_app)
    for record in records:
        case = record.WhichOneof("payload")
        if case == "command":
            _replay_command(replay, record.command, me, consensus_app)
        elif case == "accepted_state":
            state = record.accepted_state.signed_state.state
            replay._last_state[record.accepted_state.channel_id] = state_from_proto(state)
        elif case == "submitted_transaction":
            _replay_tx(replay, record.submitted_transaction)
        elif case == "chain_event":
            event = record.chain_event
            if event.WhichOneof("event") == "block_processed":
                replay.last_block = event.block_processed.block_number
            else:
                replay.last_event = (event.block_number, event.log_index)
    return replay


def _replay_command(replay: Replay, command: log_pb2.Command, me: str, app: str) -> None:
    objective_id = parse_objective_id(command.objective_id)
    case = command.WhichOneof("command")
    if case == "create_ledger_channel":
        create = command.create_ledger_channel
        fixed = fixed_part_from_proto(create.fixed)
        outcome = [single_asset_exit_from_proto(asset_exit) for asset_exit in create.outcome]
        replay.entries[objective_id] = Entry(new_direct_fund(fixed, outcome, me, app))
    elif case == "create_payment_channel":
        create_virtual = command.create_payment_channel
        fixed = fixed_part_from_proto(create_virtual.fixed)
        exits = [single_asset_exit_from_proto(item) for item in create_virtual.outcome]
        replay.entries[objective_id] = Entry(new_virtual_fund(fixed, exits, me, replay.payment_app))
    elif case == "close_payment_channel":
        replay.virtual_closes.add(objective_id)
    elif case == "close_ledger_channel":
        replay.defunds.setdefault(objective_id, [])
    elif case == "objective_decision":
        decision = command.objective_decision
        if not decision.approved:
            replay.refused[objective_id] = decision.reason
        elif objective_id.kind is ObjectiveKind.DIRECT_DEFUND:
            replay.defunds.setdefault(objective_id, [])
        elif objective_id.kind is ObjectiveKind.VIRTUAL_DEFUND:
            final = replay._last_state[objective_id.channel_id]
            index = final.fixed.participants.index(me)
            replay.entries[objective_id] = Entry(VirtualDefund(final, index))
        elif objective_id.kind is ObjectiveKind.VIRTUAL_FUND:
            prefund = replay._last_state[objective_id.channel_id]
            replay.entries[objective_id] = Entry(
                new_virtual_fund(prefund.fixed, prefund.outcome, me, replay.payment_app)
            )
        elif objective_id not in replay.entries:
            # A peer's proposal: its prefund was logged just before the decision.
            prefund = replay._last_state[objective_id.channel_id]
            replay.entries[objective_id] = Entry(
                new_direct_fund(prefund.fixed, prefund.outcome, me, app)
            )


def _replay_tx(replay: Replay, tx: log_pb2.SubmittedTransaction) -> None:
    event = tx_event(tx)
    if event is None:
        return
    objective_id = parse_objective_id(tx.objective_id)
    entry = replay.entries.get(objective_id)
    if entry is not None and isinstance(entry.objective, DirectFund | DirectDefund):
        entry.objective = update(entry.objective, event)
    elif objective_id in replay.defunds:
        replay.defunds[objective_id].append(event)


def finish_replay(
    replay: Replay,
    snapshot_of: Callable[[bytes], ChannelSnapshot | None],
    me: str,
    paid_of: Callable[[bytes], int] = lambda _: 0,
) -> dict[ObjectiveId, Entry]:
    """Build the closes from their channels (now caught up) and mark the refusals."""
    entries = dict(replay.entries)
    for objective_id in replay.virtual_closes:
        channel = objective_id.channel_id
        snapshot = snapshot_of(channel)
        assert snapshot is not None, f"{objective_id}: a logged close of an unknown channel"
        latest = snapshot.latest_signed_by(0)
        if latest is not None and latest.state.is_final:
            entries[objective_id] = Entry(VirtualDefund(latest.state, 0))
        else:
            entries[objective_id] = Entry(new_virtual_defund(snapshot, me, paid_of(channel)))
    for objective_id, events in replay.defunds.items():
        snapshot = snapshot_of(objective_id.channel_id)
        assert snapshot is not None, f"{objective_id}: a logged close of an unknown channel"
        objective: Objective = new_direct_defund(snapshot, me)
        for event in events:
            objective = update(objective, event)
        assert isinstance(objective, DirectDefund)
        entries[objective_id] = Entry(objective)
    for objective_id, reason in replay.refused.items():
        entry = entries.get(objective_id)
        if entry is not None:
            entry.failure = reason
    return entries
