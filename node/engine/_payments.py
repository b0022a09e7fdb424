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

from node.core import Signer, Voucher, uint256_from_bytes, voucher_from_proto, voucher_to_proto
from node.core.constants import engine_voucher_resend_ms, engine_voucher_resends_max
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import Input, PayRequest, VoucherHandedIn, Wake
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
    _voucher_resends: dict[bytes, int]  # early refusals answered so far, per channel
    _voucher_resend_due: set[bytes]
    _nursery: trio.Nursery | None

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

    async def create_voucher(self, channel: bytes, amount: int) -> Voucher:
        """Sign a voucher paying ``amount`` more on ``channel`` without sending it: the
        caller hands it to the payee out of band. It is logged like a sent one.

        Raises:
            CommandRefusedError: no such open channel of ours, or not enough funds.
        """
        request = PayRequest(channel, amount, send=False)
        await self._inputs_send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.voucher is not None
        return request.voucher

    async def receive_voucher(self, voucher: Voucher) -> int:
        """Accept a voucher handed to us out of band; returns the new total received.

        Raises:
            CommandRefusedError: what a payee refuses from a peer (not our channel, not the
                payer's signature, not above the last voucher, beyond the funds).
        """
        request = VoucherHandedIn(voucher)
        await self._inputs_send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.received

    # ------------------------------------------------------------------ in the loop

    def largest_voucher(self, channel: bytes) -> Voucher | None:
        """The largest voucher we accepted on ``channel`` as its payee (None: none)."""
        payee = self._payees.get(channel)
        return payee.largest if payee is not None else None

    def _replay_vouchers(self, records: Iterable[log_pb2.LogRecord]) -> None:
        """The largest voucher received on each channel (the payee's state), and our latest
        voucher of each open channel we pay on sent again: a crash may have come between
        logging it and handing it to the transport. The payee ignores one it holds."""
        paid_on: set[bytes] = set()
        for record in records:
            if record.WhichOneof("payload") != "accepted_voucher":
                continue
            voucher = voucher_from_proto(record.accepted_voucher.voucher)
            if record.accepted_voucher.sent:
                paid_on.add(voucher.channel_id)
                continue
            known = self._payees.get(voucher.channel_id)
            if known is None or known.received < voucher.amount:
                self._payees[voucher.channel_id] = PayeeVouchers(voucher.channel_id, voucher)
        for channel in sorted(paid_on):
            facts = self._payment_channel(channel)
            if facts is not None and facts.is_open and facts.payer == self.address:
                voucher = self.signer.voucher(channel, self._payers[channel].paid)
                self._outgoing.append((facts.payee, voucher_payload(voucher)))

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
        request.voucher = voucher
        if request.send:
            self._outgoing.append((facts.payee, voucher_payload(voucher)))
        return [accepted_voucher_record(voucher, sent=True)]

    def _voucher_refused_early(self, peer: str, channel: bytes) -> None:
        """The payee judged our voucher before it saw the channel open: offer the latest
        one again soon (vouchers are cumulative, so the latest covers every earlier one)."""
        payer = self._payers.get(channel)
        facts = self._open_channels.get(channel)
        if payer is None or payer.paid == 0 or facts is None or facts.payee != peer:
            return
        attempts = self._voucher_resends.get(channel, 0)
        if attempts >= engine_voucher_resends_max or self._nursery is None:
            return
        self._voucher_resends[channel] = attempts + 1
        delay_s = min(engine_voucher_resend_ms * 2**attempts, 1000) / 1000
        self._nursery.start_soon(self._resend_voucher_later, channel, delay_s)

    async def _resend_voucher_later(self, channel: bytes, delay_s: float) -> None:
        await trio.sleep(delay_s)
        self._voucher_resend_due.add(channel)
        await self._inputs_send.send(Wake(f"voucher of 0x{channel.hex()}"))

    def _resend_vouchers(self) -> None:
        """The latest voucher of each channel whose payee refused one early."""
        due, self._voucher_resend_due = self._voucher_resend_due, set()
        for channel in sorted(due):
            facts = self._open_channels.get(channel)
            paid = self._payers[channel].paid
            if facts is not None:
                voucher = self.signer.voucher(channel, paid)
                self._outgoing.append((facts.payee, voucher_payload(voucher)))

    def _voucher_handed_in(self, request: VoucherHandedIn) -> list[log_pb2.LogRecord]:
        """A voucher from the API: the same checks as a peer's, the payer's address aside."""
        try:
            facts = self._payment_channel(request.voucher.channel_id)
            payer = facts.payer if facts is not None else ""
            records = self._accept(payer, request.voucher)
        except (PeerStateError, ProtocolError) as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        request.received = self._payees[request.voucher.channel_id].received
        self._voucher_touched.add(request.voucher.channel_id)  # logged in this step
        return records

    def _peer_voucher(self, peer: str, payload: wire_pb2.Payload) -> list[log_pb2.LogRecord]:
        """A payer's voucher: accepted only on an open channel we are paid on.

        Raises:
            PeerStateError: what ``accept_voucher`` refuses, or a sender who is not the payer.
        """
        voucher = voucher_from_proto(payload.voucher)
        payee = self._payees.get(voucher.channel_id)
        if payee is not None and voucher == payee.largest and peer == self._payer_of(voucher):
            return []  # the payer's latest again (it restarted): nothing new, nothing wrong
        return self._accept(peer, voucher)

    def _payer_of(self, voucher: Voucher) -> str | None:
        facts = self._payment_channel(voucher.channel_id)
        return facts.payer if facts is not None else None

    def _accept(self, peer: str, voucher: Voucher) -> list[log_pb2.LogRecord]:
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
        return [accepted_voucher_record(voucher, sent=False)]


def voucher_payload(voucher: Voucher) -> wire_pb2.Payload:
    """The message carrying ``voucher`` to its payee."""
    objective = ObjectiveId(ObjectiveKind.VIRTUAL_FUND, voucher.channel_id)
    payload = wire_pb2.Payload(objective_id=str(objective))
    payload.voucher.CopyFrom(voucher_to_proto(voucher))
    return payload
