"""Vouchers: the payer's cumulative vouchers, the payee's checks, batches and properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import Voucher, channel_id, recover_voucher_signer
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols import (
    ChannelSnapshot,
    PayeeVouchers,
    PayerVouchers,
    PaymentChannel,
    accept_voucher,
    accept_vouchers,
    final_state_for,
    next_voucher,
    payment_channel_from_snapshot,
    voucher_app_data,
)
from tests.protocols.protocols_fakes import ALICE, BOB, IRENE
from tests.protocols.protocols_virtual_fakes import (
    IVAN,
    PATHS,
    PAYER_AMOUNT,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)

PATH = PATHS[1]
FIXED = virtual_fixed(PATH)
V = channel_id(FIXED)
OUTCOME = virtual_outcome(PATH)
PREFUND_ALL = signed_by(setup_state(FIXED, OUTCOME, 0), PATH)
POSTFUND_ALL = signed_by(setup_state(FIXED, OUTCOME, 1), PATH)
OPEN_SNAPSHOT = ChannelSnapshot(FIXED, (POSTFUND_ALL,) * 3, POSTFUND_ALL)
OPEN = payment_channel_from_snapshot(OPEN_SNAPSHOT)
# Big funds for the property tests: no payment sequence below runs out.
RICH = dataclasses.replace(OPEN, funds=10**30)


def fault_of(vouchers: PayeeVouchers, voucher: Voucher, channel: PaymentChannel) -> PeerFault:
    with pytest.raises(PeerStateError) as error:
        accept_voucher(vouchers, voucher, channel)
    return error.value.fault


def test_the_channel_is_open_from_the_postfund_until_a_final_state() -> None:
    assert PaymentChannel(V, ALICE.address, BOB.address, PAYER_AMOUNT, True) == OPEN
    prefunded = ChannelSnapshot(FIXED, (PREFUND_ALL,) * 3, PREFUND_ALL)
    assert not payment_channel_from_snapshot(prefunded).is_open
    assert not payment_channel_from_snapshot(ChannelSnapshot(FIXED)).is_open
    final = signed_by(final_state_for(OPEN_SNAPSHOT, 3), [ALICE])
    closing = ChannelSnapshot(FIXED, (final, POSTFUND_ALL, POSTFUND_ALL), POSTFUND_ALL)
    assert not payment_channel_from_snapshot(closing).is_open


def test_payer_signs_cumulative_amounts() -> None:
    payer = PayerVouchers(V)
    payer, first = next_voucher(payer, 3, OPEN, ALICE)
    payer, second = next_voucher(payer, 4, OPEN, ALICE)
    assert (first.amount, second.amount, payer.paid) == (3, 7, 7)
    assert recover_voucher_signer(V, 7, second.signature) == ALICE.address


def test_payer_refuses_what_it_cannot_pay() -> None:
    payer = PayerVouchers(V, paid=PAYER_AMOUNT - 1)
    with pytest.raises(ProtocolError, match="above the funds"):
        next_voucher(payer, 2, OPEN, ALICE)
    with pytest.raises(ProtocolError, match="not open"):
        next_voucher(payer, 1, dataclasses.replace(OPEN, is_open=False), ALICE)
    with pytest.raises(ProtocolError, match="not the payer"):
        next_voucher(payer, 1, OPEN, BOB)
    for amount in (0, -1):
        with pytest.raises(ProtocolError, match="positive"):
            next_voucher(payer, amount, OPEN, ALICE)
    with pytest.raises(ProtocolError, match="channel_id"):
        next_voucher(PayerVouchers(channel_id(virtual_fixed(PATH, nonce=1))), 1, OPEN, ALICE)
    assert next_voucher(payer, 1, OPEN, ALICE)[0].paid == PAYER_AMOUNT


def test_payee_accepts_increasing_vouchers_of_the_payer() -> None:
    payee = accept_voucher(PayeeVouchers(V), ALICE.voucher(V, 2), OPEN)
    payee = accept_voucher(payee, ALICE.voucher(V, PAYER_AMOUNT), OPEN)
    assert payee.received == PAYER_AMOUNT
    assert payee.largest == ALICE.voucher(V, PAYER_AMOUNT)


def test_payee_refuses_replays_stale_and_excessive_vouchers() -> None:
    payee = accept_voucher(PayeeVouchers(V), ALICE.voucher(V, 5), OPEN)
    assert fault_of(payee, ALICE.voucher(V, 5), OPEN) is PeerFault.STALE_VOUCHER
    assert fault_of(payee, ALICE.voucher(V, 4), OPEN) is PeerFault.STALE_VOUCHER
    excessive = ALICE.voucher(V, PAYER_AMOUNT + 1)
    assert fault_of(payee, excessive, OPEN) is PeerFault.INSUFFICIENT_FUNDS


def test_a_stale_voucher_is_refused_without_recovering_its_signature() -> None:
    payee = accept_voucher(PayeeVouchers(V), ALICE.voucher(V, 5), OPEN)
    # Well-shaped, but r = 5 is no point's x: it recovers no key, whatever the message.
    unrecoverable = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    assert fault_of(payee, Voucher(V, 5, unrecoverable), OPEN) is PeerFault.STALE_VOUCHER
    assert fault_of(payee, Voucher(V, 6, unrecoverable), OPEN) is PeerFault.BAD_SIGNATURE


def test_payee_refuses_vouchers_signed_by_anyone_else() -> None:
    for signer in (BOB, IRENE, IVAN):
        fault = fault_of(PayeeVouchers(V), signer.voucher(V, 1), OPEN)
        assert fault is PeerFault.NOT_A_PARTICIPANT
    # A signature over another amount recovers to someone else.
    moved = Voucher(V, 2, ALICE.sign_voucher(V, 1))
    assert fault_of(PayeeVouchers(V), moved, OPEN) is PeerFault.NOT_A_PARTICIPANT


def test_payee_refuses_closed_and_other_channels() -> None:
    closed = dataclasses.replace(OPEN, is_open=False)
    assert fault_of(PayeeVouchers(V), ALICE.voucher(V, 1), closed) is PeerFault.CHANNEL_NOT_OPEN
    other = channel_id(virtual_fixed(PATH, nonce=1))
    fault = fault_of(PayeeVouchers(V), ALICE.voucher(other, 1), OPEN)
    assert fault is PeerFault.UNKNOWN_CHANNEL


def test_a_batch_keeps_going_past_a_refused_voucher() -> None:
    batch = [ALICE.voucher(V, 1), ALICE.voucher(V, 1), BOB.voucher(V, 2), ALICE.voucher(V, 3)]
    result = accept_vouchers(PayeeVouchers(V), batch, OPEN)
    assert result.accepted == (batch[0], batch[3])
    assert [(v, e.fault) for v, e in result.refused] == [
        (batch[1], PeerFault.STALE_VOUCHER),
        (batch[2], PeerFault.NOT_A_PARTICIPANT),
    ]
    assert result.vouchers.received == 3


def test_voucher_app_data_is_the_four_abi_words() -> None:
    voucher = ALICE.voucher(V, 7)
    data = voucher_app_data(voucher)
    assert len(data) == 4 * 32
    assert int.from_bytes(data[:32], "big") == 7
    assert int.from_bytes(data[32:64], "big") == voucher.signature[64]
    assert data[64:] == voucher.signature[:64]


payments = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(amounts=payments)
def test_payee_total_equals_what_was_paid(amounts: list[int]) -> None:
    payer, payee = PayerVouchers(V), PayeeVouchers(V)
    for amount in amounts:
        payer, voucher = next_voucher(payer, amount, RICH, ALICE)
        payee = accept_voucher(payee, voucher, RICH)
    assert payee.received == payer.paid == sum(amounts)


@settings(max_examples=40, deadline=None)
@given(amounts=payments, data=st.data())
def test_reordering_and_replay_never_exceed_the_highest_voucher(
    amounts: list[int], data: st.DataObject
) -> None:
    payer = PayerVouchers(V)
    vouchers = []
    for amount in amounts:
        payer, voucher = next_voucher(payer, amount, RICH, ALICE)
        vouchers.append(voucher)
    replayed = data.draw(st.lists(st.sampled_from(vouchers), max_size=2 * len(vouchers)))
    forged = [IVAN.voucher(V, payer.paid + 1)]
    delivered = data.draw(st.permutations([*vouchers, *replayed, *forged]))
    result = accept_vouchers(PayeeVouchers(V), delivered, RICH)
    accepted = [voucher.amount for voucher in result.accepted]
    assert accepted == sorted(set(accepted))
    # Every voucher arrived, so the payee ends at the highest one, and never above it.
    assert result.vouchers.received == max(accepted) == payer.paid
    assert forged[0] not in result.accepted
