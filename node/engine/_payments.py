"""Payments in the engine: the payer signs vouchers, the payee accepts them.

Every voucher is logged as an AcceptedVoucher in the step that signs it (payer)
or takes it (payee), with the message that carries it or the receipt of the
message it came in, so a restart never pays twice nor forgets a payment. Many
payments queued together share one write and one message per peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

import trio

from node.core import Signer, Voucher, voucher_from_proto
from node.core.constants import engine_voucher_resend_ms, engine_voucher_resends_max
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import HandInVoucher, Input, Pay, Reply, Timer
from node.engine._records import accepted_voucher_record, voucher_payload
from node.engine._state import EngineState
from node.engine._step import PendingPayments, Step
from node.engine._views import ViewCache
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    PayeeVouchers,
    PayerVouchers,
    PaymentChannel,
    accept_voucher,
    check_payment,
)

logger = logging.getLogger("node.engine")

_VOUCHER_RESEND_MS_MAX: Final = 1000


class PaymentsMixin:
    """The engine's voucher side (mixed into ``Engine``, which provides the state)."""

    address: str
    signer: Signer
    state: EngineState
    views: ViewCache
    _inputs_send: trio.MemorySendChannel[Input]
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _after: Callable[[float, Timer], None]
    _check_backlogs: Callable[[Iterable[str]], None]

    def _init_payments(self) -> None:
        self._voucher_resends: dict[bytes, int] = {}  # early refusals answered, per channel

    # ------------------------------------------------------------------ async API

    async def pay(self, channel: bytes, amount: int, payments: int = 1) -> int:
        """Pay ``amount`` more on virtual channel ``channel`` (``payments`` times); returns
        the total paid once the voucher covering it is logged (and handed to the
        transport). Payments taken in the same step share that voucher.

        Raises:
            CommandRefusedError: no such open channel of ours, or not enough funds.
        """
        if payments < 1:
            raise CommandRefusedError(Refusal.INVALID, f"payments: {payments} is not positive")
        return (await self._sign(channel, amount * payments, send=True, payments=payments)).amount

    async def create_voucher(self, channel: bytes, amount: int) -> Voucher:
        """Sign a voucher paying ``amount`` more on ``channel`` without sending it: the
        caller hands it to the payee out of band. It is logged like a sent one.

        Raises:
            CommandRefusedError: no such open channel of ours, or not enough funds.
        """
        return await self._sign(channel, amount, send=False)

    async def _sign(self, channel: bytes, amount: int, *, send: bool, payments: int = 1) -> Voucher:
        reply: Reply[Voucher] = Reply()
        await self._inputs_send.send(Pay(channel, amount, send, reply, payments))
        return await reply.wait()

    async def receive_voucher(self, voucher: Voucher) -> int:
        """Accept a voucher handed to us out of band; returns the new total received.

        Raises:
            CommandRefusedError: what a payee refuses from a peer (not our channel, not the
                payer's signature, not above the last voucher, beyond the funds).
        """
        reply: Reply[int] = Reply()
        await self._inputs_send.send(HandInVoucher(voucher, reply))
        return await reply.wait()

    # ------------------------------------------------------------------ in the loop

    def _take_payment(self, step: Step, request: Pay) -> None:
        """Check a payment; payments on one channel in one step share one voucher for
        their total (a voucher supersedes every earlier one), signed, logged and sent
        once the step's inputs are taken (``_sign_payments``). A voucher asked for out of
        band (``send`` False) is signed at once, after the payments before it."""
        channel = request.channel
        facts = self.views.payment(channel)
        if facts is None:
            request.reply.fail(
                CommandRefusedError(Refusal.NOT_FOUND, f"no payment channel 0x{channel.hex()}")
            )
            return
        if not request.send:
            self._sign_payments(step, channel)
        pending = step.payments.get(channel)
        paid = pending.total if pending is not None else self.state.paid.get(channel, 0)
        try:
            after = check_payment(PayerVouchers(channel, paid), request.amount, facts, self.address)
            if request.send:
                self._check_backlogs([facts.payee])
        except ProtocolError as error:
            request.reply.fail(CommandRefusedError(Refusal.CONFLICT, str(error)))
            return
        except CommandRefusedError as error:
            request.reply.fail(error)
            return
        if request.send:
            if pending is None:
                pending = step.payments[channel] = PendingPayments(facts.payee, after.paid)
            pending.total = after.paid
            pending.replies.append(request.reply)
            return
        voucher = self.signer.voucher(channel, after.paid)
        self._log_voucher(step, voucher)
        self._answer_when_logged(step, voucher, request.reply)

    def _sign_payments(self, step: Step, channel: bytes | None = None) -> None:
        """One voucher per channel for the payments the step took (``channel``: that
        channel's only): logged, sent to the payee, the answer of every payment."""
        channels = list(step.payments) if channel is None else [channel]
        for each in channels:
            pending = step.payments.pop(each, None)
            if pending is None:
                continue
            voucher = self.signer.voucher(each, pending.total)
            self._log_voucher(step, voucher)
            step.send(pending.payee, voucher_payload(voucher))
            for reply in pending.replies:
                self._answer_when_logged(step, voucher, reply)

    def _log_voucher(self, step: Step, voucher: Voucher) -> None:
        self._log(step, accepted_voucher_record(voucher, sent=True))
        step.touched.add(voucher.channel_id)

    @staticmethod
    def _answer_when_logged(step: Step, voucher: Voucher, reply: Reply[Voucher]) -> None:
        step.answers.append(lambda: reply.answer(voucher))
        step.refusals.append(lambda: reply.fail(_unlogged()))

    def _take_voucher(self, step: Step, request: HandInVoucher) -> None:
        """A voucher from the API: the same checks as a peer's, the payer's address aside."""
        channel = request.voucher.channel_id
        try:
            facts = self.views.payment(channel)
            self._accept(step, facts.payer if facts is not None else "", request.voucher)
        except (PeerStateError, ProtocolError) as error:
            request.reply.fail(CommandRefusedError(Refusal.CONFLICT, str(error)))
            return
        received = self.state.received[channel].amount
        reply = request.reply
        step.answers.append(lambda: reply.answer(received))
        step.refusals.append(lambda: reply.fail(_unlogged()))

    def _peer_voucher(self, step: Step, peer: str, payload: wire_pb2.Payload) -> None:
        """A payer's voucher: accepted only on an open channel we are paid on.

        Raises:
            PeerStateError: what ``accept_voucher`` refuses, or a sender who is not the payer.
        """
        voucher = voucher_from_proto(payload.voucher)
        largest = self.state.received.get(voucher.channel_id)
        if voucher == largest:
            facts = self.views.payment(voucher.channel_id)
            if facts is not None and facts.payer == peer:
                return  # the payer's latest again: nothing new, nothing wrong
        self._accept(step, peer, voucher)

    def _accept(self, step: Step, peer: str, voucher: Voucher) -> None:
        facts = self.views.payment(voucher.channel_id)
        if facts is None or facts.payee != self.address:
            raise PeerStateError(
                PeerFault.UNKNOWN_CHANNEL,
                f"no payment channel 0x{voucher.channel_id.hex()} paying this node",
            )
        if peer != facts.payer:
            raise PeerStateError(PeerFault.NOT_A_PARTICIPANT, f"{peer} is not the payer")
        vouchers = PayeeVouchers(voucher.channel_id, self.state.received.get(voucher.channel_id))
        accept_voucher(vouchers, voucher, facts)
        self._log(step, accepted_voucher_record(voucher, sent=False))
        step.touched.add(voucher.channel_id)

    def _voucher_refused_early(self, peer: str, channel: bytes) -> None:
        """The payee judged our voucher before it saw the channel open: offer the latest
        one again soon (vouchers are cumulative, so the latest covers every earlier one)."""
        facts = self.views.payment(channel)
        paid = self.state.paid.get(channel, 0)
        if paid == 0 or facts is None or not facts.is_open or facts.payee != peer:
            return
        attempts = self._voucher_resends.get(channel, 0)
        if attempts >= engine_voucher_resends_max:
            return
        self._voucher_resends[channel] = attempts + 1
        delay_ms = min(engine_voucher_resend_ms * 2**attempts, _VOUCHER_RESEND_MS_MAX)
        self._after(delay_ms / 1000, Timer("voucher", channel))

    def _send_latest_vouchers(self, step: Step) -> None:
        """After a restart: our latest voucher of each open channel we pay on, to its payee.

        A voucher handed out of band may never have reached the payee; the latest covers
        every earlier one, and a payee that holds it drops it silently.
        """
        for channel, paid in sorted(self.state.paid.items()):
            facts = self.views.payment(channel)
            if facts is not None and facts.is_open and facts.payer == self.address and paid:
                step.send(facts.payee, voucher_payload(self.signer.voucher(channel, paid)))

    def _resend_voucher(self, step: Step, channel: bytes) -> None:
        """The latest voucher of a channel whose payee refused one early."""
        facts: PaymentChannel | None = self.views.payment(channel)
        paid = self.state.paid.get(channel, 0)
        if facts is not None and facts.is_open and paid > 0:
            step.send(facts.payee, voucher_payload(self.signer.voucher(channel, paid)))
        else:
            self._voucher_resends.pop(channel, None)


def _unlogged() -> CommandRefusedError:
    return CommandRefusedError(Refusal.UNAVAILABLE, "the node could not log the payment")
