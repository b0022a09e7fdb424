"""Payments in the engine: the payer signs vouchers, the payee accepts them.

Every voucher is logged as an AcceptedVoucher before it leaves (payer) and in
the receipt write of the message carrying it (payee), so a restart never pays
twice nor forgets a payment. Many payments queued together share one log
batch and one message per peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio

from node.core import Signer, uint256_from_bytes, voucher_from_proto, voucher_to_proto
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import Input, PayRequest
from node.engine._records import accepted_voucher_record
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    ChannelSnapshot,
    ObjectiveId,
    ObjectiveKind,
    PayeeVouchers,
    PayerVouchers,
    PaymentChannel,
    accept_voucher,
    next_voucher,
    payment_channel_from_snapshot,
)

logger = logging.getLogger("node.engine")


class PaymentsMixin:
    """The engine's voucher side (mixed into ``Engine``, which provides the state)."""

    address: str
    deriver: Deriver
    signer: Signer
    snapshot: Callable[[bytes], ChannelSnapshot | None]
    _inputs_send: trio.MemorySendChannel[Input]
    _outgoing: list[tuple[str, wire_pb2.Payload]]
    _is_virtual: Callable[[bytes], bool]
    _payers: dict[bytes, PayerVouchers]
    _payees: dict[bytes, PayeeVouchers]
    _open_channels: dict[bytes, PaymentChannel]
    _voucher_touched: set[bytes]  # channels paid on since the last notification

    async def pay(self, channel: bytes, amount: int) -> int:
        """Pay ``amount`` more on virtual channel ``channel``; returns the new total paid,
        once its voucher is logged (it is sent right after).

        Raises:
            CommandRefusedError: no such open channel of ours, or not enough funds.
        """
        request = PayRequest(channel, amount)
        await self._inputs_send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.paid

    # ------------------------------------------------------------------ in the loop

    def _replay_vouchers(self, records: Iterable[log_pb2.LogRecord]) -> None:
        """The largest voucher received on each channel (the payee's state)."""
        for record in records:
            if record.WhichOneof("payload") != "accepted_voucher":
                continue
            if record.accepted_voucher.sent:
                continue
            voucher = voucher_from_proto(record.accepted_voucher.voucher)
            known = self._payees.get(voucher.channel_id)
            if known is None or known.received < voucher.amount:
                self._payees[voucher.channel_id] = PayeeVouchers(voucher.channel_id, voucher)

    def _payment_channel(self, channel: bytes) -> PaymentChannel | None:
        """The channel's payment facts; an open channel's are kept until a state changes it."""
        cached = self._open_channels.get(channel)
        if cached is not None:
            return cached
        view = self.deriver.channel(channel)
        if view is None or not self._is_virtual(view.fixed.app_definition):
            return None
        snapshot = self.snapshot(channel)
        assert snapshot is not None
        facts = payment_channel_from_snapshot(snapshot)
        if facts.is_open:
            self._open_channels[channel] = facts
            if channel not in self._payers:
                paid = uint256_from_bytes(view.paid) if view.paid else 0
                self._payers[channel] = PayerVouchers(channel, paid)
        return facts

    def _pay(self, request: PayRequest) -> list[log_pb2.LogRecord]:
        """Sign the next voucher; it is logged with the step's batch, then sent."""
        facts = self._payment_channel(request.channel)
        if facts is None:
            raise CommandRefusedError(
                Refusal.NOT_FOUND, f"no payment channel 0x{request.channel.hex()}"
            )
        vouchers = self._payers.get(request.channel, PayerVouchers(request.channel))
        try:
            after, voucher = next_voucher(vouchers, request.amount, facts, self.signer)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        self._payers[request.channel] = after
        self._voucher_touched.add(request.channel)
        request.paid = after.paid
        objective = ObjectiveId(ObjectiveKind.VIRTUAL_FUND, request.channel)
        payload = wire_pb2.Payload(objective_id=str(objective))
        payload.voucher.CopyFrom(voucher_to_proto(voucher))
        self._outgoing.append((facts.payee, payload))
        return [accepted_voucher_record(voucher, sent=True)]

    def _peer_voucher(self, peer: str, payload: wire_pb2.Payload) -> list[log_pb2.LogRecord]:
        """A payer's voucher: accepted only on an open channel we are paid on.

        Raises:
            PeerStateError: what ``accept_voucher`` refuses, or a sender who is not the payer.
        """
        voucher = voucher_from_proto(payload.voucher)
        facts = self._payment_channel(voucher.channel_id)
        if facts is None or facts.payee != self.address:
            raise PeerStateError(
                PeerFault.UNKNOWN_CHANNEL,
                f"no payment channel 0x{voucher.channel_id.hex()} paying this node",
            )
        if peer != facts.payer:
            raise PeerStateError(PeerFault.NOT_A_PARTICIPANT, f"{peer} is not the payer")
        vouchers = self._payees.get(voucher.channel_id, PayeeVouchers(voucher.channel_id))
        self._payees[voucher.channel_id] = accept_voucher(vouchers, voucher, facts)
        self._voucher_touched.add(voucher.channel_id)
        return [accepted_voucher_record(voucher, sent=False)]
