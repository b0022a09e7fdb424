"""The adjudicator's rules in Python, for the simulated chain.

Statement by statement what contracts/src/Adjudicator.sol, ConsensusApp.sol,
VirtualPaymentApp.sol and TestToken.sol do: the same checks in the same order (so
the same revert reasons), the same status words and the same logs, ABI-encoded as
the contracts emit them. ``tests/sim/test_sim_chain_differential.py`` runs a fixed
set of scenarios here and on anvil and compares them byte for byte.

Values take the adjudicator's ABI forms (``node.chain.fixed_part_tuple`` and
friends): a fixed part ``(participants, nonce, app, duration)``, a signed variable
part ``((outcome, appData, turnNum, isFinal), [(v, r, s)])``, an outcome
``[(asset, (assetType, metadata), [(destination, amount, type, metadata)])]``.
A call runs on a copy of the world state; a revert drops the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from coincurve import PublicKey
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import event_abi_to_log_topic, get_abi_input_types
from web3 import Web3

from node.chain import ADJUDICATOR, load_artifact
from node.core import keccak256

NATIVE: Final = "0x0000000000000000000000000000000000000000"
GUARANTEE: Final = 2  # allocation type of a guarantee (the exit format's)
UINT256_MAX: Final = 2**256 - 1
UINT48_MAX: Final = 2**48 - 1
EXIT_ABI: Final = "(address,(uint8,bytes),(bytes32,uint256,uint8,bytes)[])[]"
_STATE_ABI: Final = ["bytes32", "bytes", EXIT_ABI, "uint256", "bool"]
_FIXED_ABI: Final = ["address[]", "uint256", "address", "uint256"]
_PREFIX: Final = b"\x19Ethereum Signed Message:\n32"
# Panics surface on anvil as "Panic error 0x..": the engine never causes one.
PANIC: Final = "panic"

Fixed = tuple[list[str], int, str, int]
Outcome = list[Any]
Signed = tuple[Any, list[tuple[int, bytes, bytes]]]


class Revert(Exception):
    """The call reverted with ``reason`` ("" when the contract gives none)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def require(condition: bool, reason: str) -> None:
    if not condition:
        raise Revert(reason)


@dataclass(frozen=True)
class LogEntry:
    """One EVM log: the emitting contract, its topics and data."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes


@dataclass
class WorldState:
    """Balances, allowances and the adjudicator's storage.

    Attributes:
        balances: (asset, address) -> amount; the native coin is asset ``NATIVE``.
        allowances: (token, owner, spender) -> amount.
        holdings: (asset, channel id) -> amount the adjudicator holds.
        status: channel id -> the 32-byte status word (absent: zero).
    """

    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    allowances: dict[tuple[str, str, str], int] = field(default_factory=dict)
    holdings: dict[tuple[str, bytes], int] = field(default_factory=dict)
    status: dict[bytes, bytes] = field(default_factory=dict)

    def copy(self) -> WorldState:
        return WorldState(
            dict(self.balances), dict(self.allowances), dict(self.holdings), dict(self.status)
        )

    def balance(self, asset: str, address: str) -> int:
        return self.balances.get((asset, address), 0)

    def held(self, asset: str, channel: bytes) -> int:
        return self.holdings.get((asset, channel), 0)


class EventCodec:
    """Adjudicator events as the contract logs them (topics and ABI data)."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[bytes, list[str], list[bool]]] = {}
        for abi in load_artifact(ADJUDICATOR).abi:
            if abi["type"] != "event":
                continue
            types = get_abi_input_types(abi)
            indexed = [bool(item.get("indexed")) for item in abi["inputs"]]
            self._events[abi["name"]] = (event_abi_to_log_topic(abi), types, indexed)
        self.transfer_topic = keccak256(b"Transfer(address,address,uint256)")
        self.approval_topic = keccak256(b"Approval(address,address,uint256)")

    def log(self, address: str, name: str, *values: Any) -> LogEntry:
        topic, types, indexed = self._events[name]
        topics = [topic]
        data_types, data = [], []
        for kind, is_indexed, value in zip(types, indexed, values, strict=True):
            if is_indexed:
                topics.append(abi_encode([kind], [value]))
            else:
                data_types.append(kind)
                data.append(value)
        return LogEntry(address, tuple(topics), abi_encode(data_types, data))


def _word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def is_external(destination: bytes) -> bool:
    """An address left-padded with 12 zero bytes."""
    return destination[:12] == bytes(12)


def channel_id_of(fixed: Fixed) -> bytes:
    return keccak256(abi_encode(_FIXED_ABI, list(fixed)))


def state_hash_of(channel: bytes, variable: Any) -> bytes:
    outcome, app_data, turn_num, is_final = variable
    return keccak256(abi_encode(_STATE_ABI, [channel, app_data, outcome, turn_num, is_final]))


def outcome_hash(outcome: Outcome) -> bytes:
    return keccak256(abi_encode([EXIT_ABI], [outcome]))


def fingerprint(state_hash: bytes, outcome_hash_: bytes) -> int:
    return int.from_bytes(keccak256(state_hash + outcome_hash_), "big") & (2**160 - 1)


def pack_status(turn_num: int, finalizes_at: int, state_hash: bytes, outcome_hash_: bytes) -> bytes:
    word = (turn_num << 208) | (finalizes_at << 160) | fingerprint(state_hash, outcome_hash_)
    return word.to_bytes(32, "big")


def unpack_status(word: bytes) -> tuple[int, int, int]:
    """(turnNumRecord, finalizesAt, fingerprint) of a status word."""
    value = int.from_bytes(word, "big")
    return value >> 208, (value >> 160) & UINT48_MAX, value & (2**160 - 1)


def recover(digest: bytes, v: int, r: bytes, s: bytes) -> str:
    """``SignerMask.recover``: the signer of an Ethereum signed message; reverts on none."""
    prefixed = keccak256(_PREFIX + digest)
    signer = NATIVE
    if v in (27, 28):
        try:
            public = PublicKey.from_signature_and_message(
                bytes(r) + bytes(s) + bytes([v - 27]), prefixed, hasher=None
            )
            raw = keccak256(public.format(compressed=False)[1:])[12:]
            signer = Web3.to_checksum_address(raw)
        except ValueError:
            signer = NATIVE
    require(signer != NATIVE, "Invalid signature")
    return signer


def signed_by(participants: Sequence[str], digest: bytes, signatures: Sequence[Any]) -> int:
    """Bitmask of the participants whose signatures on ``digest`` are given."""
    mask = 0
    for v, r, s in signatures:
        signer = recover(digest, v, r, s)
        if signer in participants:
            mask |= 1 << list(participants).index(signer)
    return mask


def is_unanimous(mask: int, count: int) -> bool:
    return bin(mask).count("1") == count


def decode_outcome(encoded: bytes) -> Outcome:
    try:
        (outcome,) = abi_decode([EXIT_ABI], encoded)
    except Exception:  # eth_abi's decoding errors share no base class worth naming
        raise Revert("") from None
    return [
        (asset, (meta[0], bytes(meta[1])), [(bytes(a[0]), a[1], a[2], bytes(a[3])) for a in allocs])
        for asset, meta, allocs in outcome
    ]


def index(sequence: Sequence[Any], position: int) -> Any:
    """``sequence[position]`` or the panic Solidity raises out of bounds."""
    if not 0 <= position < len(sequence):
        raise Revert(PANIC)
    return sequence[position]


@dataclass(frozen=True)
class Contracts:
    """Addresses of the simulated deployment."""

    adjudicator: str
    consensus_app: str
    payment_app: str
    token: str


class Execution:
    """One transaction's run: the world state it changes and the logs it emits."""

    def __init__(
        self, contracts: Contracts, codec: EventCodec, state: WorldState, now: int
    ) -> None:
        self.contracts = contracts
        self.codec = codec
        self.state = state
        self.now = now
        self.logs: list[LogEntry] = []

    # ------------------------------------------------------------------ tokens

    def token_move(self, token: str, source: str, target: str, value: int) -> None:
        require(target != NATIVE, "ERC20: transfer to the zero address")
        balance = self.state.balance(token, source)
        require(balance >= value, "ERC20: transfer amount exceeds balance")
        self.state.balances[(token, source)] = balance - value
        self.state.balances[(token, target)] = self.state.balance(token, target) + value
        topics = (self.codec.transfer_topic, _word(source), _word(target))
        self.logs.append(LogEntry(token, topics, value.to_bytes(32, "big")))

    def token_approve(self, token: str, owner: str, spender: str, value: int) -> None:
        self.state.allowances[(token, owner, spender)] = value
        topics = (self.codec.approval_topic, _word(owner), _word(spender))
        self.logs.append(LogEntry(token, topics, value.to_bytes(32, "big")))

    def token_transfer_from(self, token: str, spender: str, source: str, target: str, value: int):
        allowed = self.state.allowances.get((token, source, spender), 0)
        if allowed != UINT256_MAX:
            require(allowed >= value, "ERC20: insufficient allowance")
            self.state.allowances[(token, source, spender)] = allowed - value
        self.token_move(token, source, target, value)

    def _call_token(self, token: str) -> None:
        require(token == self.contracts.token, "Token is not a contract")

    def native_send(self, source: str, target: str, value: int) -> None:
        balance = self.state.balance(NATIVE, source)
        require(balance >= value, PANIC)
        self.state.balances[(NATIVE, source)] = balance - value
        self.state.balances[(NATIVE, target)] = self.state.balance(NATIVE, target) + value

    def emit(self, name: str, *values: Any) -> None:
        self.logs.append(self.codec.log(self.contracts.adjudicator, name, *values))

    # ------------------------------------------------------------------ deposits

    def deposit(
        self, sender: str, value: int, asset: str, channel: bytes, expected: int, amount: int
    ) -> None:
        require(not is_external(channel), "Deposit to external destination")
        held = self.state.held(asset, channel)
        require(held == expected, "held != expectedHeld")
        held += amount
        require(held <= UINT256_MAX, PANIC)
        self.state.holdings[(asset, channel)] = held
        if asset == NATIVE:
            require(value == amount, "Incorrect msg.value for deposit")
        else:
            require(value == 0, "Native coin sent with token deposit")
            self._call_token(asset)
            self.token_transfer_from(
                asset, self.contracts.adjudicator, sender, self.contracts.adjudicator, amount
            )
        self.emit("Deposited", channel, asset, held)

    # ------------------------------------------------------------------ disputes

    def challenge(self, fixed: Fixed, proof: list[Signed], candidate: Signed, sig: Any) -> None:
        channel = channel_id_of(fixed)
        turn_num = candidate[0][2]
        record, finalizes_at, _ = unpack_status(self._status(channel))
        if finalizes_at == 0:
            require(turn_num >= record, "turnNumRecord decreased.")
        else:
            require(finalizes_at > self.now, "Channel finalized.")
            require(turn_num > record, "turnNumRecord not increased.")
        digest = self.require_supported(fixed, channel, proof, candidate)
        challenger = recover(
            keccak256(abi_encode(["bytes32", "string"], [digest, "forceMove"])), *sig
        )
        require(challenger in _participants(fixed), "Challenger is not a participant")
        new_finalizes_at = self.now + fixed[3]
        require(new_finalizes_at <= UINT48_MAX, PANIC)
        self.emit("ChallengeRegistered", channel, new_finalizes_at, proof, candidate)
        self.state.status[channel] = pack_status(
            turn_num, new_finalizes_at, digest, outcome_hash(candidate[0][0])
        )

    def checkpoint(self, fixed: Fixed, proof: list[Signed], candidate: Signed) -> None:
        channel = channel_id_of(fixed)
        turn_num = candidate[0][2]
        record, finalizes_at, _ = unpack_status(self._status(channel))
        require(finalizes_at == 0 or finalizes_at > self.now, "Channel finalized.")
        require(turn_num > record, "turnNumRecord not increased.")
        self.require_supported(fixed, channel, proof, candidate)
        self.state.status[channel] = pack_status(turn_num, 0, bytes(32), bytes(32))
        self.emit("Checkpointed" if finalizes_at == 0 else "ChallengeCleared", channel, turn_num)

    def conclude(self, fixed: Fixed, candidate: Signed) -> None:
        channel = self._require_concludable(fixed, candidate)
        self.state.status[channel] = pack_status(
            0, self.now, bytes(32), outcome_hash(candidate[0][0])
        )
        self.emit("Concluded", channel, self.now)

    def conclude_and_transfer_all_assets(self, fixed: Fixed, candidate: Signed) -> None:
        channel = self._require_concludable(fixed, candidate)
        self.emit("Concluded", channel, self.now)
        self._transfer_all(channel, candidate[0][0], bytes(32), 0, self.now)

    def _require_concludable(self, fixed: Fixed, candidate: Signed) -> bytes:
        channel = channel_id_of(fixed)
        _, finalizes_at, _ = unpack_status(self._status(channel))
        require(finalizes_at == 0 or finalizes_at > self.now, "Channel finalized.")
        require(bool(candidate[0][3]), "State must be final")
        digest = state_hash_of(channel, candidate[0])
        mask = signed_by(_participants(fixed), digest, candidate[1])
        require(is_unanimous(mask, len(fixed[0])), "!unanimous")
        return channel

    def _status(self, channel: bytes) -> bytes:
        return self.state.status.get(channel, bytes(32))

    # ------------------------------------------------------------------ apps

    def require_supported(
        self, fixed: Fixed, channel: bytes, proof: list[Signed], candidate: Signed
    ) -> bytes:
        """``_requireSupported``: the candidate's state hash, or the app's revert."""
        participants = _participants(fixed)
        proof_masks = [
            (part[0], signed_by(participants, state_hash_of(channel, part[0]), part[1]))
            for part in proof
        ]
        digest = state_hash_of(channel, candidate[0])
        mask = signed_by(participants, digest, candidate[1])
        supported, reason = self.app_supports(fixed, proof_masks, (candidate[0], mask))
        require(supported, reason)
        return digest

    def app_supports(
        self, fixed: Fixed, proof: list[tuple[Any, int]], candidate: tuple[Any, int]
    ) -> tuple[bool, str]:
        """The app's ``stateIsSupported`` (a revert inside it reverts the caller)."""
        if fixed[2] == self.contracts.consensus_app:
            require(len(proof) == 0, "|proof|!=0")
            require(is_unanimous(candidate[1], len(fixed[0])), "!unanimous")
            return True, ""
        if fixed[2] == self.contracts.payment_app:
            return _virtual_payment_supports(fixed, proof, candidate)
        raise Revert("")  # a call to an address without code

    # ------------------------------------------------------------------ payouts

    def transfer_all_assets(self, channel: bytes, outcome: Outcome, digest: bytes) -> None:
        record, finalizes_at, print_ = unpack_status(self._status(channel))
        _require_finalized(finalizes_at, self.now)
        require(print_ == fingerprint(digest, outcome_hash(outcome)), "incorrect fingerprint")
        self._transfer_all(channel, outcome, digest, record, finalizes_at)

    def _transfer_all(
        self, channel: bytes, outcome: Outcome, digest: bytes, record: int, finalizes_at: int
    ) -> None:
        paid: list[list[int]] = []
        initial: list[int] = []
        settled = True
        for asset, _, allocations in outcome:
            surplus = self.state.held(asset, channel)
            initial.append(surplus)
            amounts = []
            for allocation in allocations:
                require(allocation[2] != GUARANTEE, "cannot transfer a guarantee")
                affordable = min(allocation[1], surplus)
                settled = settled and affordable == allocation[1]
                amounts.append(affordable)
                surplus -= affordable
            paid.append(amounts)
        for position, (asset, _, _) in enumerate(outcome):
            final = self.state.held(asset, channel) - sum(paid[position])
            require(final >= 0, PANIC)
            self.state.holdings[(asset, channel)] = final
            self.emit("AllocationUpdated", channel, position, initial[position], final)
        if settled:
            self.state.status[channel] = bytes(32)
        else:
            remaining = [
                (
                    asset,
                    meta,
                    [(a[0], a[1] - p, a[2], a[3]) for a, p in zip(allocs, amounts, strict=True)],
                )
                for (asset, meta, allocs), amounts in zip(outcome, paid, strict=True)
            ]
            self.state.status[channel] = pack_status(
                record, finalizes_at, digest, outcome_hash(remaining)
            )
        for (asset, _, allocations), amounts in zip(outcome, paid, strict=True):
            for allocation, amount in zip(allocations, amounts, strict=True):
                self._pay_out(asset, allocation[0], amount)

    def _pay_out(self, asset: str, destination: bytes, amount: int) -> None:
        if amount == 0:
            return
        if not is_external(destination):
            key = (asset, destination)
            self.state.holdings[key] = self.state.held(asset, destination) + amount
            return
        target = Web3.to_checksum_address(destination[12:])
        if asset == NATIVE:
            self.native_send(self.contracts.adjudicator, target, amount)
        else:
            self._call_token(asset)
            self.token_move(asset, self.contracts.adjudicator, target, amount)

    def transfer(
        self, asset_index: int, channel: bytes, encoded: bytes, digest: bytes, indices: list[int]
    ) -> None:
        for position in range(1, len(indices)):
            require(indices[position - 1] < indices[position], "Indices must be sorted")
        outcome = self._finalized_outcome(channel, digest, encoded)
        asset, meta, allocations = index(outcome, asset_index)
        initial = self.state.held(asset, channel)
        remaining, payouts, total = _transfer_effects(initial, allocations, indices)
        self.state.holdings[(asset, channel)] = initial - total
        outcome[asset_index] = (asset, meta, remaining)
        record, finalizes_at, _ = unpack_status(self._status(channel))
        self.state.status[channel] = pack_status(
            record, finalizes_at, digest, outcome_hash(outcome)
        )
        self.emit("AllocationUpdated", channel, asset_index, initial, initial - total)
        for destination, amount in payouts:
            self._pay_out(asset, destination, amount)

    def _finalized_outcome(self, channel: bytes, digest: bytes, encoded: bytes) -> Outcome:
        self._require_finalized_with(channel, digest, keccak256(encoded))
        return decode_outcome(encoded)

    def _require_finalized_with(
        self, channel: bytes, digest: bytes, outcome_hash_: bytes
    ) -> tuple[int, int]:
        record, finalizes_at, print_ = unpack_status(self._status(channel))
        _require_finalized(finalizes_at, self.now)
        require(print_ == fingerprint(digest, outcome_hash_), "incorrect fingerprint")
        return record, finalizes_at

    # ------------------------------------------------------------------ guarantees

    def reclaim(self, args: Sequence[Any]) -> None:
        source_id, source_hash, source_bytes, source_index, target_index = args[:5]
        target_hash, target_bytes, target_asset_index = args[5:]
        record, finalizes_at = self._require_finalized_with(
            source_id, source_hash, keccak256(source_bytes)
        )
        source = decode_outcome(source_bytes)
        asset, meta, source_allocations = index(source, source_index)
        guarantee = index(source_allocations, target_index)
        require(guarantee[2] == GUARANTEE, "not a guarantee allocation")
        target = decode_outcome(target_bytes)
        require(index(target, target_asset_index)[0] == asset, "targetAsset != guaranteeAsset")
        self._require_finalized_with(guarantee[0], target_hash, keccak256(target_bytes))
        source[source_index] = (
            asset,
            meta,
            _reclaim_effects(source_allocations, target[target_asset_index][2], target_index),
        )
        self.state.status[source_id] = pack_status(
            record, finalizes_at, source_hash, outcome_hash(source)
        )
        self.emit("Reclaimed", source_id, source_index)


def _participants(fixed: Fixed) -> list[str]:
    return [Web3.to_checksum_address(participant) for participant in fixed[0]]


def _require_finalized(finalizes_at: int, now: int) -> None:
    require(finalizes_at != 0 and finalizes_at <= now, "Channel not finalized.")


def _transfer_effects(
    initial: int, allocations: list[Any], indices: list[int]
) -> tuple[list[Any], list[tuple[bytes, int]], int]:
    """``compute_transfer_effects_and_interactions``: the allocations left, the payouts
    (destination, amount) and their total."""
    every = len(indices) == 0
    remaining, payouts = [], []
    surplus, total, k = initial, 0, 0
    for position, allocation in enumerate(allocations):
        affordable = min(allocation[1], surplus)
        left = allocation[1]
        if every or (k < len(indices) and indices[k] == position):
            require(allocation[2] != GUARANTEE, "cannot transfer a guarantee")
            left = allocation[1] - affordable
            payouts.append((allocation[0], affordable))
            total += affordable
            k += 1
        remaining.append((allocation[0], left, allocation[2], allocation[3]))
        surplus -= affordable
    return remaining, payouts, total


def _reclaim_effects(source: list[Any], target: list[Any], target_index: int) -> list[Any]:
    """``compute_reclaim_effects``: the guarantee removed, its parties credited."""
    require(target_index < len(source), "could not find target")
    guarantee = source[target_index]
    try:
        left, right = abi_decode(["bytes32", "bytes32"], guarantee[3])
    except Exception:  # eth_abi's decoding errors share no base class worth naming
        raise Revert("") from None
    result = []
    left_found = right_found = False
    reclaimed = 0
    for position, allocation in enumerate(source):
        if position == target_index:
            continue
        amount = allocation[1]
        if not left_found and allocation[0] == left:
            amount += index(target, 0)[1]
            reclaimed += target[0][1]
            left_found = True
        if not right_found and allocation[0] == right:
            amount += index(target, 1)[1]
            reclaimed += target[1][1]
            right_found = True
        result.append((allocation[0], amount, allocation[2], allocation[3]))
    require(left_found, "could not find left")
    require(right_found, "could not find right")
    require(reclaimed == guarantee[1], "totalReclaimed!=guarantee.amount")
    return result


def _virtual_payment_supports(
    fixed: Fixed, proof: list[tuple[Any, int]], candidate: tuple[Any, int]
) -> tuple[bool, str]:
    """VirtualPaymentApp.stateIsSupported."""
    count = len(fixed[0])
    variable, mask = candidate
    if len(proof) == 0:
        require(is_unanimous(mask, count), "!unanimous; |proof|=0")
        require(variable[2] <= 1, "bad candidate turnNum; |proof|=0")
        return True, ""
    require(len(proof) == 1, "bad proof length")
    require(proof[0][0][2] == 1, "bad proof[0].turnNum; |proof|=1")
    require(is_unanimous(proof[0][1], count), "postfund !unanimous; |proof|=1")
    require(variable[2] == 2, "bad candidate turnNum; |proof|=1")
    require((mask >> (count - 1)) & 1 == 1, "redemption not signed by Bob")
    try:
        amount, (v, r, s) = abi_decode(["(uint256,(uint8,bytes32,bytes32))"], variable[1])[0]
    except Exception:  # eth_abi's decoding errors share no base class worth naming
        raise Revert("") from None
    channel = channel_id_of(fixed)
    signer = recover(keccak256(abi_encode(["bytes32", "uint256"], [channel, amount])), v, r, s)
    require(signer == _participants(fixed)[0], "invalid signature for voucher")
    before, after = proof[0][0][0], variable[0]
    require(
        len(before) == 1 and len(after) == 1 and before[0][0] == NATIVE and after[0][0] == NATIVE,
        "only native asset allowed",
    )
    payer_before = index(before[0][2], 0)[1]
    require(
        amount <= payer_before and index(after[0][2], 0)[1] == payer_before - amount,
        "Alice not adjusted correctly",
    )
    require(index(after[0][2], 1)[1] == amount, "Bob not adjusted correctly")
    return True, ""
