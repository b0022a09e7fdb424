"""The payments module's rules in Python (wasm/src/payments.zig): the oracle of its tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from node.derive import RecordRejectedError
from node.proto import derive_pb2, log_pb2

RECENT_MAX = 8
UINT256_MAX = 2**256 - 1


@dataclass
class _Counterparty:
    sent: int = 0
    received: int = 0
    payments: int = 0
    recent: list[derive_pb2.Payment] = field(default_factory=list)


class PaymentsOracle:
    def __init__(self) -> None:
        self.cursor = 0
        self.parties: dict[bytes, tuple[bytes, bytes]] = {}
        self.high_water: dict[bytes, int] = {}
        self.counterparties: dict[bytes, _Counterparty] = {}

    def apply(self, record: log_pb2.LogRecord) -> None:
        if record.seq != self.cursor + 1:
            raise RecordRejectedError("apply_batch", 4, f"seq is {record.seq}")
        case = record.WhichOneof("payload")
        if case == "accepted_state":
            participants = record.accepted_state.signed_state.state.fixed.participants
            channel_id = record.accepted_state.channel_id
            self.high_water.setdefault(channel_id, 0)
            if channel_id not in self.parties:
                self.parties[channel_id] = (participants[0], participants[-1])
        elif case == "accepted_voucher":
            self._voucher(record.accepted_voucher, record.seq)
        self.cursor = record.seq

    def _voucher(self, accepted: log_pb2.AcceptedVoucher, seq: int) -> None:
        channel_id = accepted.voucher.channel_id
        amount = int.from_bytes(accepted.voucher.amount, "big")
        previous = self.high_water.get(channel_id, 0)
        self.high_water[channel_id] = max(previous, amount)
        if amount <= previous or channel_id not in self.parties:
            return
        payer, payee = self.parties[channel_id]
        party = self.counterparties.setdefault(payee if accepted.sent else payer, _Counterparty())
        increase = amount - previous
        if accepted.sent:
            party.sent = min(party.sent + increase, UINT256_MAX)
        else:
            party.received = min(party.received + increase, UINT256_MAX)
        party.payments += 1
        party.recent = [
            *party.recent[-(RECENT_MAX - 1) :],
            derive_pb2.Payment(
                seq=seq,
                channel_id=channel_id,
                amount=increase.to_bytes(32, "big"),
                sent=accepted.sent,
            ),
        ]

    def query(self, request: derive_pb2.Query) -> derive_pb2.QueryResult:
        case = request.WhichOneof("query")
        result = derive_pb2.QueryResult()
        if case == "get_cursor":
            result.cursor.last_seq = self.cursor
        elif case == "list_counterparties":
            listing = result.counterparties
            listing.SetInParent()
            for address in sorted(self.counterparties):
                party = self.counterparties[address]
                listing.counterparties.add(
                    address=address,
                    sent=party.sent.to_bytes(32, "big"),
                    received=party.received.to_bytes(32, "big"),
                    payments=party.payments,
                    recent=party.recent,
                )
        else:
            result.status = derive_pb2.QUERY_STATUS_BAD_QUERY
            result.detail = "query: this module answers get_cursor and list_counterparties"
        return result

    def table_rows(self) -> dict[str, set[tuple[object, ...]]]:
        """The rows of the payments module's tables (the tables extension)."""
        channels = {
            (
                "0x" + channel_id.hex(),
                "0x" + self.parties[channel_id][0].hex() if channel_id in self.parties else None,
                "0x" + self.parties[channel_id][1].hex() if channel_id in self.parties else None,
                str(high_water),
            )
            for channel_id, high_water in self.high_water.items()
        }
        parties = {
            ("0x" + address.hex(), str(party.sent), str(party.received), party.payments)
            for address, party in self.counterparties.items()
        }
        recent = {
            (
                "0x" + address.hex(),
                payment.seq,
                "0x" + payment.channel_id.hex(),
                str(int.from_bytes(payment.amount, "big")),
                int(payment.sent),
            )
            for address, party in self.counterparties.items()
            for payment in party.recent
        }
        return {
            "payment_channels": channels,
            "counterparties": parties,
            "recent_payments": recent,
            "totals": {(1, self.cursor, self.cursor)},
        }
