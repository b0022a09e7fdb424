"""Enforcing a virtual channel on chain when a party disappears (PROTOCOL.md §3, §4).

A participant of a virtual channel V who can no longer reach the others settles
the ledger it shares with its neighbour on V's path:

1. challenge V: the payee with a turn-2 redemption state carrying the payer's
   largest voucher (signed by the payee, proved by the postfund everyone
   signed); anyone else with the postfund itself;
2. challenge the ledger with its latest supported state, which holds V's guarantee;
3. once both have finalized, ``reclaim`` V's outcome into the ledger through
   the guarantee, and pay the ledger out.

These functions only compute: which states to submit, what the chain's status
records mean, and the outcomes the adjudicator will store. The engine submits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    InvalidSignatureError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    address_to_destination,
    channel_id,
    constants,
    keccak256,
    outcome_hash,
    recover_voucher_signer,
    state_hash,
)
from node.core.errors import InvalidValueError, ProtocolError
from node.protocols._checks import participant_index
from node.protocols._effects import SubmitChallenge
from node.protocols._ledger import ledger_outcome_from_exit
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._vouchers import voucher_app_data

REDEMPTION_TURN_NUM = constants.postfund_turn_num + 1
_FINGERPRINT_BITS = 160


@dataclass(frozen=True)
class FundingLedger:
    """Our ledger channel that funds a virtual channel, at its latest supported state.

    Attributes:
        supported: the ledger's latest state signed by both parties.
        guarantee_index: index of the virtual channel's guarantee among the allocations.
        my_index: our index among the ledger's participants (and its first allocations).
    """

    supported: SignedState
    guarantee_index: int
    my_index: int

    @property
    def id(self) -> bytes:
        """The ledger channel's id."""
        return channel_id(self.supported.state.fixed)

    @property
    def guarantee(self) -> Guarantee:
        """The guarantee for the virtual channel."""
        (asset_exit,) = self.supported.state.outcome
        return Guarantee.from_allocation(asset_exit.allocations[self.guarantee_index])


def redemption_state(postfund: State, voucher: Voucher) -> State:
    """The VirtualPaymentApp's turn-2 state enforcing ``voucher``: appData carries the
    voucher, and the outcome moves exactly its amount from the payer to the payee.

    Raises:
        ProtocolError: not the postfund of a ``[payer, payee]`` channel, a voucher of
            another channel, not signed by the payer, or above the payer's funds.
    """
    fixed = postfund.fixed
    if postfund.turn_num != constants.postfund_turn_num or postfund.is_final:
        raise ProtocolError(f"postfund: turn {postfund.turn_num} is not the postfund")
    if voucher.channel_id != channel_id(fixed):
        raise ProtocolError(
            f"voucher: for 0x{voucher.channel_id.hex()}, not 0x{channel_id(fixed).hex()}"
        )
    try:
        signer = recover_voucher_signer(voucher.channel_id, voucher.amount, voucher.signature)
    except InvalidSignatureError as error:
        raise ProtocolError(f"voucher: {error}") from error
    if signer != fixed.participants[0]:
        raise ProtocolError(f"voucher: signed by {signer}, not by the payer")
    payer, payee = _payment_allocations(postfund)
    if voucher.amount > payer.amount:
        raise ProtocolError(
            f"voucher: amount {voucher.amount} is above the payer's funds {payer.amount}"
        )
    (asset_exit,) = postfund.outcome
    moved = SingleAssetExit(
        asset_exit.asset,
        [
            Allocation(payer.destination, payer.amount - voucher.amount),
            Allocation(payee.destination, payee.amount + voucher.amount),
        ],
    )
    return State(fixed, voucher_app_data(voucher), (moved,), REDEMPTION_TURN_NUM, False)


def _payment_allocations(postfund: State) -> tuple[Allocation, Allocation]:
    """The payer's and payee's allocations of a virtual channel's native-asset outcome."""
    fixed = postfund.fixed
    if len(postfund.outcome) != 1:
        raise ProtocolError(f"postfund: {len(postfund.outcome)} assets, the app allows one")
    (asset_exit,) = postfund.outcome
    if int(asset_exit.asset, 16) != 0:
        raise ProtocolError(f"postfund: asset {asset_exit.asset}: the app allows the native one")
    expected = [address_to_destination(fixed.participants[i]) for i in (0, -1)]
    if [allocation.destination for allocation in asset_exit.allocations] != expected:
        raise ProtocolError("postfund: exactly [payer, payee] allocations are expected")
    payer, payee = asset_exit.allocations
    return payer, payee


def virtual_challenge(
    snapshot: ChannelSnapshot, signer: Signer, largest: Voucher | None
) -> SubmitChallenge:
    """The challenge that enforces what ``signer`` holds on the virtual channel.

    The payee with a voucher challenges with the redemption state it signs,
    proved by the postfund; anyone else (or a payee paid nothing) with the
    setup state everyone signed (the postfund, or the prefund of a channel
    whose funding stopped half way), which needs no proof.

    Raises:
        ProtocolError: we are not a participant, no setup state is signed by
            everyone (nothing to enforce), the channel was closed with a final
            state, or the voucher does not fit the channel.
    """
    fixed = snapshot.fixed
    my_index = participant_index(fixed, signer.address)
    setup = snapshot.supported
    if setup is None:
        raise ProtocolError(
            f"channel 0x{snapshot.channel_id.hex()}: nothing to enforce, no state"
            " signed by every participant"
        )
    if setup.state.is_final or setup.state.turn_num > constants.postfund_turn_num:
        raise ProtocolError(
            f"channel 0x{snapshot.channel_id.hex()}: turn {setup.state.turn_num} is"
            " supported; only a setup state is enforced by challenge"
        )
    if setup.signer_indices != frozenset(range(len(fixed.participants))):
        raise ProtocolError("supported: the setup state lacks a participant's signature")
    _payment_allocations(setup.state)
    is_payee = my_index == len(fixed.participants) - 1
    redeem = setup.state.turn_num == constants.postfund_turn_num and is_payee
    if not redeem or largest is None or largest.amount == 0:
        return SubmitChallenge(setup, (), signer.sign_challenge(setup.state))
    postfund = setup
    state = redemption_state(postfund.state, largest)
    candidate = SignedState(state, {my_index: signer.sign_state(state)})
    return SubmitChallenge(candidate, (postfund,), signer.sign_challenge(state))


def virtual_conclusion(snapshot: ChannelSnapshot, me: str) -> SignedState | None:
    """The final state every participant signed, if the cooperative close got that far:
    it is enforced with ``conclude`` (no app check, no challenge period), not a challenge.

    Raises:
        ProtocolError: we are not a participant, or the final outcome is not one the
            VirtualPaymentApp's channels pay (one native asset, payer then payee).
    """
    fixed = snapshot.fixed
    participant_index(fixed, me)
    final = snapshot.supported
    if final is None or not final.state.is_final:
        return None
    if final.signer_indices != frozenset(range(len(fixed.participants))):
        return None
    _payment_allocations(final.state)
    return final


def funding_ledger(
    fixed: FixedPart,
    me: str,
    ledgers: Iterable[ChannelSnapshot],
    chosen: bytes | None = None,
) -> FundingLedger:
    """Our ledger whose latest supported state guarantees the virtual channel ``fixed``.

    Unless ``chosen`` names one, the ledger toward the payer is taken (the one
    with the participant before us), or for the payer the one toward the payee.

    Raises:
        ProtocolError: we are not a participant, ``chosen`` is not a ledger next
            to us on the path, or no supported ledger state holds the guarantee.
    """
    my_index = participant_index(fixed, me)
    last = len(fixed.participants) - 1
    sides = [left for left in (my_index - 1, my_index) if 0 <= left < last]
    target = channel_id(fixed)
    found: dict[int, FundingLedger] = {}
    for ledger in ledgers:
        if chosen is not None and ledger.channel_id != chosen:
            continue
        for left in sides:
            funding = _guaranteeing(ledger, fixed, left, me, target)
            if funding is not None:
                found.setdefault(left, funding)
    if chosen is not None:
        if not found:
            raise ProtocolError(
                f"ledger 0x{chosen.hex()}: not our ledger next to us on the path of"
                f" 0x{target.hex()}, or its supported state holds no guarantee for it"
            )
        return next(iter(found.values()))
    for left in sides:
        if left in found:
            return found[left]
    raise ProtocolError(
        f"channel 0x{target.hex()}: nothing to enforce, no supported ledger state of ours"
        " guarantees it"
    )


def _guaranteeing(
    ledger: ChannelSnapshot, fixed: FixedPart, left: int, me: str, target: bytes
) -> FundingLedger | None:
    """``ledger`` as a FundingLedger of ``target`` between participants left and left+1."""
    pair = (fixed.participants[left], fixed.participants[left + 1])
    supported = ledger.supported
    if set(ledger.fixed.participants) != set(pair) or supported is None:
        return None
    if supported.state.is_final or supported.signer_indices != {0, 1}:
        return None
    try:
        outcome = ledger_outcome_from_exit(ledger.fixed, supported.state.outcome)
    except ProtocolError:
        return None
    guarantee = outcome.guarantee_of(target)
    if guarantee is None:
        return None
    if (guarantee.left, guarantee.right) != tuple(address_to_destination(p) for p in pair):
        return None
    index = 2 + outcome.guarantees.index(guarantee)
    return FundingLedger(supported, index, ledger.fixed.participants.index(me))


def ledger_challenge(funding: FundingLedger, signer: Signer) -> SubmitChallenge:
    """The challenge of the ledger with its latest supported state (ConsensusApp: no proof).

    Raises:
        ProtocolError: ``signer`` is not the ledger party we are.
    """
    fixed = funding.supported.state.fixed
    if fixed.participants[funding.my_index] != signer.address:
        raise ProtocolError(f"signer: {signer.address} is not participant {funding.my_index}")
    state = funding.supported.state
    return SubmitChallenge(funding.supported, (), signer.sign_challenge(state))


def fingerprint(state_hash_: bytes, outcome: Sequence[SingleAssetExit]) -> int:
    """The low 160 bits of keccak256(stateHash, outcomeHash): what the adjudicator's
    status keeps of the state a channel is challenged or finalized with."""
    digest = keccak256(state_hash_ + outcome_hash(outcome))
    return int.from_bytes(digest, "big") & ((1 << _FINGERPRINT_BITS) - 1)


def state_fingerprint(state: State) -> int:
    """``fingerprint`` of a challenged state with its own outcome."""
    return fingerprint(state_hash(state), state.outcome)


def finalized_with(recorded: int, options: Iterable[State]) -> State | None:
    """Which of ``options`` a challenge registered, by the status fingerprint it left
    (None: none of them)."""
    for state in options:
        if state_fingerprint(state) == recorded:
            return state
    return None


def concluded_with(recorded: int, final: State) -> bool:
    """Whether a channel's status fingerprint is that of ``conclude`` with ``final``,
    which records a zero state hash."""
    return fingerprint(bytes(constants.bytes32_bytes), final.outcome) == recorded


def reclaimed_outcome(
    source: Sequence[SingleAssetExit], guarantee_index: int, target: Sequence[SingleAssetExit]
) -> tuple[SingleAssetExit, ...]:
    """The ledger outcome after ``reclaim``: the guarantee is removed and its left and
    right parties are credited with the target's first and second allocations.

    Raises:
        ProtocolError: not one asset each, no guarantee at ``guarantee_index``,
            different assets, or amounts that do not add up to the guarantee.
    """
    if len(source) != 1 or len(target) != 1:
        raise ProtocolError("reclaim: the ledger and the target have one asset each")
    (ledger_exit,), (target_exit,) = source, target
    if ledger_exit.asset != target_exit.asset:
        raise ProtocolError(f"reclaim: target asset {target_exit.asset} is not the ledger's")
    allocations = ledger_exit.allocations
    if not 0 <= guarantee_index < len(allocations):
        raise ProtocolError(f"reclaim: no allocation {guarantee_index} in the ledger")
    try:
        guarantee = Guarantee.from_allocation(allocations[guarantee_index])
    except InvalidValueError as error:
        raise ProtocolError(f"reclaim: allocation {guarantee_index}: {error}") from error
    if len(target_exit.allocations) != 2:
        raise ProtocolError("reclaim: the target pays exactly two allocations")
    left_amount, right_amount = (a.amount for a in target_exit.allocations)
    if left_amount + right_amount != guarantee.amount:
        raise ProtocolError(
            f"reclaim: the target pays {left_amount + right_amount}, the guarantee"
            f" locks {guarantee.amount}"
        )
    credit = {guarantee.left: left_amount, guarantee.right: right_amount}
    result = []
    for index, allocation in enumerate(allocations):
        if index == guarantee_index:
            continue
        amount = allocation.amount + credit.pop(allocation.destination, 0)
        result.append(
            Allocation(
                allocation.destination, amount, allocation.allocation_type, allocation.metadata
            )
        )
    if credit:
        raise ProtocolError("reclaim: the guarantee's parties are not both in the ledger")
    return (
        SingleAssetExit(
            ledger_exit.asset, result, ledger_exit.asset_type, ledger_exit.asset_metadata
        ),
    )


def paid_out_outcome(
    outcome: Sequence[SingleAssetExit], indices: Sequence[int], held: int
) -> tuple[SingleAssetExit, ...]:
    """The outcome the adjudicator keeps after paying ``indices`` (all when empty) out of
    ``held``, in allocation order and as far as the holdings go."""
    (asset_exit,) = outcome
    surplus = held
    remaining = []
    for index, allocation in enumerate(asset_exit.allocations):
        affordable = min(allocation.amount, surplus)
        left = allocation.amount
        if not indices or index in indices:
            left -= affordable
        surplus -= affordable
        remaining.append(
            Allocation(
                allocation.destination, left, allocation.allocation_type, allocation.metadata
            )
        )
    return (
        SingleAssetExit(
            asset_exit.asset, remaining, asset_exit.asset_type, asset_exit.asset_metadata
        ),
    )


@dataclass(frozen=True)
class LedgerPayout:
    """What settling one challenged ledger state comes to, step by step: one
    ``reclaim`` per guarantee (in the ledger's order), then the payout of it all.

    Attributes:
        state: the ledger state a challenge registered.
        reclaims: per guarantee, ``(target, index in the outcome it is reclaimed
            from, that outcome)``; each step's outcome is the one before, reclaimed.
        reclaimed: the outcome once every guarantee is reclaimed.
        paid_out: the outcome the adjudicator keeps after paying everything out.
        payout: what the payout sends us.
    """

    state: State
    reclaims: tuple[tuple[bytes, int, tuple[SingleAssetExit, ...]], ...]
    reclaimed: tuple[SingleAssetExit, ...]
    paid_out: tuple[SingleAssetExit, ...]
    payout: int

    def stage_of(self, recorded: int) -> int | None:
        """How many steps a status fingerprint shows done: 0 (challenged) to
        ``len(reclaims)`` (all reclaimed), then one more once paid out (None: the
        status is of another state)."""
        recorded_hash = state_hash(self.state)
        outcomes = [outcome for _, _, outcome in self.reclaims]
        outcomes += [self.reclaimed, self.paid_out]
        for done, outcome in enumerate(outcomes):
            if fingerprint(recorded_hash, outcome) == recorded:
                return done
        return None


def ledger_payout(
    state: State, my_index: int, targets: Mapping[bytes, Sequence[SingleAssetExit]]
) -> LedgerPayout:
    """The settlement of ledger ``state`` once each channel it guarantees finalized
    with the outcome ``targets`` gives for it.

    Raises:
        ProtocolError: a guarantee whose channel has no outcome in ``targets``, or
            a reclaim that does not fit (see ``reclaimed_outcome``).
    """
    if len(state.outcome) != 1:
        raise ProtocolError(f"ledger: {len(state.outcome)} assets, a ledger has one")
    outcome: tuple[SingleAssetExit, ...] = state.outcome
    reclaims = []
    kind = constants.allocation_type_guarantee
    while True:
        allocations = outcome[0].allocations
        guarantees = [i for i, a in enumerate(allocations) if a.allocation_type == kind]
        if not guarantees:
            break
        index = guarantees[0]
        target = allocations[index].destination
        if target not in targets:
            raise ProtocolError(f"ledger: the guarantee for 0x{target.hex()} has no outcome")
        reclaims.append((target, index, outcome))
        outcome = reclaimed_outcome(outcome, index, targets[target])
    total = sum(allocation.amount for allocation in outcome[0].allocations)
    paid_out = paid_out_outcome(outcome, (), total)
    payout = outcome[0].allocations[my_index].amount
    return LedgerPayout(state, tuple(reclaims), outcome, paid_out, payout)
