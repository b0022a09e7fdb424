"""The engine state as a snapshot (``EngineSnapshot`` in proto/scnode/v1/engine.proto).

A snapshot is taken only between steps, so the journal is empty and the state is
exactly the fold of the log up to the snapshot's sequence number (acknowledgements
aside: an acknowledged message never needs sending again, so it is not kept).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, assert_never

from node.core import (
    address_from_bytes,
    address_to_bytes,
    fixed_part_from_proto,
    fixed_part_to_proto,
    single_asset_exit_from_proto,
    single_asset_exit_to_proto,
    state_from_proto,
    state_to_proto,
    uint256_from_bytes,
    uint256_to_bytes,
    voucher_from_proto,
    voucher_to_proto,
)
from node.core.errors import InvalidValueError
from node.engine._ledger_codec import signed_proposal_from_proto, signed_proposal_to_proto
from node.engine._records import TX_KIND_FROM_LOG, TX_KIND_TO_LOG
from node.engine._state import ChainCursor, EngineState, Entry, Seen
from node.engine._watch_codec import watched_from_proto, watched_to_proto
from node.proto import engine_pb2, wire_pb2
from node.protocols import (
    Defend,
    DefendWaitingFor,
    DirectDefund,
    DirectDefundWaitingFor,
    DirectFund,
    DirectFundWaitingFor,
    Guard,
    Objective,
    Settle,
    SettleWaitingFor,
    TransactionKind,
    VirtualDefund,
    VirtualDefundWaitingFor,
    VirtualFund,
    VirtualFundWaitingFor,
    WaitingFor,
    parse_objective_id,
)

SNAPSHOT_FORMAT_VERSION: Final = 1
# The key of engine snapshots in the log's snapshot store (a module key is its
# sha256): a fixed name, since the engine's format is versioned inside.
ENGINE_SNAPSHOT_KEY: Final = b"scnode engine state".ljust(32, b"\x00")


def encode_state(state: EngineState) -> bytes:
    """The snapshot of ``state`` (the journal must be empty)."""
    assert len(state.journal) == 0, "a snapshot holds committed state only"
    snapshot = engine_pb2.EngineSnapshot(format_version=SNAPSHOT_FORMAT_VERSION)
    for entry in state.objectives.values():
        snapshot.objectives.append(_entry_to_proto(entry))
    for ledger_id, proposals in sorted(state.ledger_proposals.items()):
        if proposals:
            item = snapshot.ledgers.add(ledger_id=ledger_id)
            item.proposals.extend(signed_proposal_to_proto(p) for p in proposals)
    for _, voucher in sorted(state.received.items()):
        snapshot.received.append(voucher_to_proto(voucher))
    for channel, amount in sorted(state.paid.items()):
        snapshot.paid.add(channel_id=channel, amount=uint256_to_bytes(amount))
    for _, voucher in sorted(state.sent_vouchers.items()):
        snapshot.sent.append(voucher_to_proto(voucher))
    for peer in sorted(set(state.outbox) | set(state.next_ids) | set(state.seen)):
        seen = state.seen_of(peer)
        messages = snapshot.peers.add(
            peer=peer,
            next_id=state.next_id(peer),
            seen_contiguous_max=seen.contiguous_max,
            seen_above=sorted(seen.above),
        )
        messages.unacked.extend(envelope for _, envelope in sorted(state.outbox_of(peer).items()))
    cursor = state.cursor
    if cursor.last_block is not None:
        snapshot.chain.has_block = True
        snapshot.chain.last_block = cursor.last_block
    if cursor.last_event is not None:
        snapshot.chain.has_event = True
        snapshot.chain.event_block, snapshot.chain.event_log_index = cursor.last_event
    for _, watched in sorted(state.watched.items()):
        snapshot.watched.append(watched_to_proto(watched))
    snapshot.towers.extend(address_to_bytes(tower) for tower in state.towers)
    for mined, transactions in ((False, state.unconfirmed), (True, state.mined)):
        for (objective_id, kind, channel, asset), hashes in transactions.items():
            for tx_hash in hashes:
                snapshot.unconfirmed.add(
                    objective_id=str(objective_id),
                    tx_kind=TX_KIND_TO_LOG[kind],
                    channel_id=channel,
                    asset=address_to_bytes(asset) if asset else b"",
                    tx_hash=tx_hash,
                    mined=mined,
                )
    return snapshot.SerializeToString()


def decode_state(blob: bytes, state: EngineState) -> None:
    """Load a snapshot into an empty ``state``.

    Raises:
        InvalidValueError: a snapshot of another format, or one that does not decode.
    """
    assert not state.objectives
    assert len(state.journal) == 0
    try:
        snapshot = engine_pb2.EngineSnapshot.FromString(blob)
    except Exception as error:  # protobuf raises DecodeError or others on garbage
        raise InvalidValueError("snapshot", f"does not decode: {error}") from None
    if snapshot.format_version != SNAPSHOT_FORMAT_VERSION:
        raise InvalidValueError("snapshot", f"format {snapshot.format_version}, expected 1")
    for item in snapshot.objectives:
        entry = _entry_from_proto(item)
        state.put_entry(entry.objective.id, entry)
    for ledger in snapshot.ledgers:
        proposals = tuple(signed_proposal_from_proto(p) for p in ledger.proposals)
        state.ledger_proposals[ledger.ledger_id] = proposals
    for voucher in snapshot.received:
        decoded = voucher_from_proto(voucher)
        state.received[decoded.channel_id] = decoded
    for paid in snapshot.paid:
        state.paid[paid.channel_id] = uint256_from_bytes(paid.amount)
    for voucher in snapshot.sent:
        decoded = voucher_from_proto(voucher)
        state.sent_vouchers[decoded.channel_id] = decoded
    for messages in snapshot.peers:
        peer = address_to_bytes(address_from_bytes(messages.peer, "peer"))
        state.next_ids[peer] = messages.next_id
        state.seen[peer] = Seen(messages.seen_contiguous_max, frozenset(messages.seen_above))
        box: dict[int, bytes] = {}
        for envelope in messages.unacked:
            box[wire_pb2.Envelope.FromString(envelope).id] = envelope
        if box:
            state.outbox[peer] = box
            state.outbox_bytes[peer] = sum(len(envelope) for envelope in box.values())
    chain = snapshot.chain
    state.set_cursor(
        ChainCursor(
            chain.last_block if chain.has_block else None,
            (chain.event_block, chain.event_log_index) if chain.has_event else None,
        )
    )
    for watched_item in snapshot.watched:
        watched = watched_from_proto(watched_item)
        state.watched[watched.channel_id] = watched
        for client, _ in watched.requests:
            state.watch_counts[client] = state.watch_counts.get(client, 0) + 1
    for tower in snapshot.towers:
        state.towers[address_from_bytes(tower, "snapshot.towers")] = None
    for tx in snapshot.unconfirmed:
        asset = address_from_bytes(tx.asset, "unconfirmed.asset") if tx.asset else None
        key = (
            parse_objective_id(tx.objective_id),
            TX_KIND_FROM_LOG[tx.tx_kind],
            tx.channel_id,
            asset,
        )
        transactions = state.mined if tx.mined else state.unconfirmed
        transactions[key] = (*transactions.get(key, ()), tx.tx_hash)
    state.journal.commit()


def _entry_to_proto(entry: Entry) -> engine_pb2.ObjectiveEntry:
    item = engine_pb2.ObjectiveEntry(
        failure=entry.failure or "",
        done=entry.done,
        created_ms=entry.created_ms,
        proposer=address_to_bytes(entry.proposer) if entry.proposer else b"",
    )
    objective = entry.objective
    match objective:
        case DirectFund():
            fund = item.direct_fund
            fund.fixed.CopyFrom(fixed_part_to_proto(objective.fixed))
            fund.outcome.extend(single_asset_exit_to_proto(e) for e in objective.outcome)
            fund.my_index = objective.my_index
            fund.deposits_submitted.extend(
                address_to_bytes(asset) for asset in sorted(objective.deposits_submitted)
            )
        case DirectDefund():
            item.direct_defund.final_state.CopyFrom(state_to_proto(objective.final_state))
            item.direct_defund.my_index = objective.my_index
            item.direct_defund.conclude_submitted = objective.conclude_submitted
        case VirtualFund():
            virtual = item.virtual_fund
            virtual.fixed.CopyFrom(fixed_part_to_proto(objective.fixed))
            virtual.outcome.extend(single_asset_exit_to_proto(e) for e in objective.outcome)
            virtual.my_index = objective.my_index
        case VirtualDefund():
            item.virtual_defund.final_state.CopyFrom(state_to_proto(objective.final_state))
            item.virtual_defund.my_index = objective.my_index
        case Settle():
            settle = item.settle
            settle.channel_id = objective.channel_id
            settle.ledger.CopyFrom(fixed_part_to_proto(objective.ledger))
            settle.my_index = objective.my_index
            _submitted_to_proto(objective.submitted, settle.submitted)
        case Defend():
            item.defend.fixed.CopyFrom(fixed_part_to_proto(objective.fixed))
            item.defend.my_index = objective.my_index
            _submitted_to_proto(objective.submitted, item.defend.submitted)
        case Guard():
            item.guard.fixed.CopyFrom(fixed_part_to_proto(objective.fixed))
            _submitted_to_proto(objective.submitted, item.guard.submitted)
        case _:
            assert_never(objective)
    return item


def _submitted_to_proto(submitted: frozenset[tuple[TransactionKind, bytes]], into: Any) -> None:
    for kind, channel in sorted(submitted, key=lambda key: (key[0].value, key[1])):
        into.add(kind=TX_KIND_TO_LOG[kind], channel_id=channel)


def _submitted_from_proto(
    keys: Iterable[engine_pb2.SubmittedKey],
) -> frozenset[tuple[TransactionKind, bytes]]:
    return frozenset((TX_KIND_FROM_LOG[key.kind], key.channel_id) for key in keys)


def _entry_from_proto(item: engine_pb2.ObjectiveEntry) -> Entry:
    objective = _objective_from_proto(item)
    waiting_for: WaitingFor | None = None
    if item.done:
        waiting_for = _done_of(objective)
    proposer = address_from_bytes(item.proposer, "entry.proposer") if item.proposer else None
    return Entry(objective, waiting_for, item.failure or None, item.created_ms, proposer)


def _objective_from_proto(item: engine_pb2.ObjectiveEntry) -> Objective:
    case = item.WhichOneof("objective")
    if case == "direct_fund":
        fund = item.direct_fund
        return DirectFund(
            fixed_part_from_proto(fund.fixed),
            tuple(single_asset_exit_from_proto(e) for e in fund.outcome),
            fund.my_index,
            frozenset(address_from_bytes(asset) for asset in fund.deposits_submitted),
        )
    if case == "direct_defund":
        defund = item.direct_defund
        return DirectDefund(
            state_from_proto(defund.final_state), defund.my_index, defund.conclude_submitted
        )
    if case == "virtual_fund":
        virtual = item.virtual_fund
        outcome = tuple(single_asset_exit_from_proto(e) for e in virtual.outcome)
        return VirtualFund(fixed_part_from_proto(virtual.fixed), outcome, virtual.my_index)
    if case == "virtual_defund":
        closing = item.virtual_defund
        return VirtualDefund(state_from_proto(closing.final_state), closing.my_index)
    if case == "settle":
        settle = item.settle
        submitted = _submitted_from_proto(settle.submitted)
        return Settle(
            settle.channel_id, fixed_part_from_proto(settle.ledger), settle.my_index, submitted
        )
    if case == "defend":
        defend = item.defend
        fixed = fixed_part_from_proto(defend.fixed)
        return Defend(fixed, defend.my_index, _submitted_from_proto(defend.submitted))
    if case == "guard":
        guard = item.guard
        return Guard(fixed_part_from_proto(guard.fixed), _submitted_from_proto(guard.submitted))
    raise InvalidValueError("snapshot.objectives", f"an entry of unknown kind {case!r}")


def _done_of(objective: Objective) -> WaitingFor:
    match objective:
        case DirectFund():
            return DirectFundWaitingFor.DONE
        case DirectDefund():
            return DirectDefundWaitingFor.DONE
        case VirtualFund():
            return VirtualFundWaitingFor.DONE
        case VirtualDefund():
            return VirtualDefundWaitingFor.DONE
        case Settle():
            return SettleWaitingFor.DONE
        case Defend() | Guard():
            return DefendWaitingFor.DONE
        case _:
            assert_never(objective)
