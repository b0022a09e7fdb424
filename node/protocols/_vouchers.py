"""Payments on a virtual channel: cumulative vouchers (PROTOCOL.md §3, Payments).

The payer (participants[0]) signs the new total paid with each payment; the
payee (the last participant) accepts a voucher only on an open channel, only
with the payer's signature, only above the last total it accepted and only
within the payer's funds. A replayed or stale voucher is refused before its
signature is recovered, so accepting N vouchers costs N recoveries at most.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from node.core import (
    InvalidSignatureError,
    Signer,
    Voucher,
    address_to_destination,
    constants,
    recover_voucher_signer,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._snapshot import ChannelSnapshot

_WORD = constants.bytes32_bytes


@dataclass(frozen=True)
class PaymentChannel:
    """What voucher logic needs to know of a virtual channel.

    Attributes:
        channel_id: the virtual channel's id.
        payer: participants[0], who signs vouchers.
        payee: the last participant, who accepts them.
        funds: the payer's allocation in the postfund: the most vouchers may pay.
        is_open: the postfund is supported and no final state is signed.
    """

    channel_id: bytes
    payer: str
    payee: str
    funds: int
    is_open: bool


def payment_channel_from_snapshot(snapshot: ChannelSnapshot) -> PaymentChannel:
    """The payment facts of the virtual channel in ``snapshot``.

    The channel is open once its postfund (turn 1) is supported, and until
    anyone signs a final state or a later turn, or it is challenged or concluded
    on chain. Before the postfund the funds are read from the latest signed setup
    state, and the channel is not open.
    """
    fixed = snapshot.fixed
    payer, payee = fixed.participants[0], fixed.participants[-1]
    supported = snapshot.supported
    closing = any(
        signed is not None
        and (signed.state.is_final or signed.state.turn_num > constants.postfund_turn_num)
        for signed in snapshot.latest_signed
    )
    is_open = (
        supported is not None
        and supported.state.turn_num == constants.postfund_turn_num
        and not closing
        and snapshot.finalizes_at == 0
    )
    funds = 0
    if supported is not None:
        payer_destination = address_to_destination(payer)
        funds = sum(
            allocation.amount
            for asset_exit in supported.state.outcome
            for allocation in asset_exit.allocations
            if allocation.destination == payer_destination
        )
    return PaymentChannel(snapshot.channel_id, payer, payee, funds, is_open)


@dataclass(frozen=True)
class PayerVouchers:
    """The payer's side of one channel: the total paid so far.

    Attributes:
        channel_id: the virtual channel's id.
        paid: the amount of the latest voucher signed (0 before the first).
    """

    channel_id: bytes
    paid: int = 0

    def __post_init__(self) -> None:
        assert self.paid >= 0


def next_voucher(
    vouchers: PayerVouchers, amount: int, channel: PaymentChannel, signer: Signer
) -> tuple[PayerVouchers, Voucher]:
    """Pay ``amount`` more: the payer's state after it and the voucher for the new total.

    Raises:
        ProtocolError: see ``check_payment``.
    """
    after = check_payment(vouchers, amount, channel, signer.address)
    return after, signer.voucher(channel.channel_id, after.paid)


def check_payment(
    vouchers: PayerVouchers, amount: int, channel: PaymentChannel, payer: str
) -> PayerVouchers:
    """The payer's state after paying ``amount`` more, unsigned: many payments can be
    checked one by one and covered by one voucher for their total (a voucher supersedes
    every earlier one on its channel).

    Raises:
        ProtocolError: another channel, the channel is not open, ``payer`` is not its
            payer, the amount is not positive, or the total would exceed the funds.
    """
    if channel.channel_id != vouchers.channel_id:
        raise ProtocolError(
            f"channel_id: 0x{channel.channel_id.hex()} is not 0x{vouchers.channel_id.hex()}"
        )
    if not channel.is_open:
        raise ProtocolError(f"channel 0x{channel.channel_id.hex()} is not open: no payment")
    if payer != channel.payer:
        raise ProtocolError(f"signer: {payer} is not the payer {channel.payer}")
    if type(amount) is not int or amount <= 0:
        raise ProtocolError(f"amount: {amount!r}, a payment is a positive integer")
    total = vouchers.paid + amount
    if total > channel.funds:
        raise ProtocolError(f"amount: {amount} more makes {total}, above the funds {channel.funds}")
    return dataclasses.replace(vouchers, paid=total)


@dataclass(frozen=True)
class PayeeVouchers:
    """The payee's side of one channel: the largest voucher accepted.

    Attributes:
        channel_id: the virtual channel's id.
        largest: the accepted voucher with the largest amount, or None.
    """

    channel_id: bytes
    largest: Voucher | None = None

    def __post_init__(self) -> None:
        assert self.largest is None or self.largest.channel_id == self.channel_id

    @property
    def received(self) -> int:
        """The total the payer has paid, by the largest voucher accepted."""
        return 0 if self.largest is None else self.largest.amount


def accept_voucher(
    vouchers: PayeeVouchers, voucher: Voucher, channel: PaymentChannel
) -> PayeeVouchers:
    """The payee's state after ``voucher``, checked against the protocol's rules.

    The cheap checks come first, so a replay costs no signature recovery.

    Raises:
        PeerStateError: UNKNOWN_CHANNEL (another channel), CHANNEL_NOT_OPEN,
            STALE_VOUCHER (not above the last accepted total), INSUFFICIENT_FUNDS
            (above the payer's funds), BAD_SIGNATURE or NOT_A_PARTICIPANT (not
            the payer's signature).
    """
    if voucher.channel_id != vouchers.channel_id or channel.channel_id != vouchers.channel_id:
        raise PeerStateError(
            PeerFault.UNKNOWN_CHANNEL,
            f"voucher for 0x{voucher.channel_id.hex()}, not 0x{vouchers.channel_id.hex()}",
        )
    if not channel.is_open:
        raise PeerStateError(
            PeerFault.CHANNEL_NOT_OPEN, f"channel 0x{channel.channel_id.hex()} is not open"
        )
    if voucher.amount <= vouchers.received:
        raise PeerStateError(
            PeerFault.STALE_VOUCHER,
            f"amount {voucher.amount} is not above {vouchers.received}, accepted already",
        )
    if voucher.amount > channel.funds:
        raise PeerStateError(
            PeerFault.INSUFFICIENT_FUNDS,
            f"amount {voucher.amount} is above the payer's funds {channel.funds}",
        )
    try:
        signer = recover_voucher_signer(voucher.channel_id, voucher.amount, voucher.signature)
    except InvalidSignatureError as error:
        raise PeerStateError(PeerFault.BAD_SIGNATURE, f"voucher: {error}") from error
    if signer != channel.payer:
        raise PeerStateError(
            PeerFault.NOT_A_PARTICIPANT,
            f"voucher signed by {signer}, not by the payer {channel.payer}",
        )
    return dataclasses.replace(vouchers, largest=voucher)


@dataclass(frozen=True)
class VoucherBatch:
    """What ``accept_vouchers`` made of a batch.

    Attributes:
        vouchers: the payee's state after the batch.
        accepted: the vouchers accepted, in order (amounts strictly increasing).
        refused: each refused voucher with the reason.
    """

    vouchers: PayeeVouchers
    accepted: tuple[Voucher, ...]
    refused: tuple[tuple[Voucher, PeerStateError], ...]


def accept_vouchers(
    vouchers: PayeeVouchers, batch: Iterable[Voucher], channel: PaymentChannel
) -> VoucherBatch:
    """``accept_voucher`` over a batch in order; a refused voucher does not stop the rest."""
    accepted: list[Voucher] = []
    refused: list[tuple[Voucher, PeerStateError]] = []
    for voucher in batch:
        try:
            vouchers = accept_voucher(vouchers, voucher, channel)
        except PeerStateError as error:
            refused.append((voucher, error))
        else:
            accepted.append(voucher)
    return VoucherBatch(vouchers, tuple(accepted), tuple(refused))


def voucher_app_data(voucher: Voucher) -> bytes:
    """The VirtualPaymentApp's appData for a turn-2 state enforcing ``voucher`` on chain:
    ``abi.encode((uint256 amount, (uint8 v, bytes32 r, bytes32 s) signature))``."""
    # Every member is static, so the encoding is the four words in order.
    signature = voucher.signature
    v, r, s = signature[64], signature[:32], signature[32:64]
    return voucher.amount.to_bytes(_WORD, "big") + v.to_bytes(_WORD, "big") + r + s
