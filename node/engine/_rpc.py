"""The node's JSON-RPC methods: thin adapters from typed params to the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from node.core import Voucher, constants
from node.core.errors import InvalidValueError
from node.engine._engine import Engine
from node.engine._errors import CommandRefusedError, Refusal
from node.protocols import ObjectiveId, parse_objective_id
from node.rpc import (
    ADDRESS,
    BYTES32,
    STRING,
    UINT64,
    UINT256,
    ErrorCode,
    JsonValue,
    MethodRegistry,
    Param,
    RpcError,
    hex_bytes,
    integer,
    list_of,
)

NATIVE_ASSET = "0x0000000000000000000000000000000000000000"
_CODES = {
    Refusal.INVALID: ErrorCode.INVALID_PARAMS,
    Refusal.NOT_FOUND: ErrorCode.CHANNEL_NOT_FOUND,
    Refusal.CONFLICT: ErrorCode.INVALID_STATE,
    Refusal.OBJECTIVE_NOT_FOUND: ErrorCode.OBJECTIVE_NOT_FOUND,
    Refusal.UNAVAILABLE: ErrorCode.INTERNAL_ERROR,
}
# A settlement's stage by the pause point of its objective.
_SETTLE_STAGES = {
    "CHALLENGES": "CHALLENGING",
    "FINALIZATION": "CHALLENGED",
    "RECLAIM": "PAYING_OUT",
    "PAYOUT": "PAYING_OUT",
    "DONE": "SETTLED",
}
NodeInfo = Callable[[], dict[str, JsonValue]]


@contextmanager
def _answering() -> Iterator[None]:
    """Engine refusals as JSON-RPC errors."""
    try:
        yield
    except CommandRefusedError as error:
        raise RpcError(_CODES[error.refusal], error.message) from None


def _created(objective_id: ObjectiveId) -> dict[str, JsonValue]:
    return {"objective_id": str(objective_id), "channel_id": "0x" + objective_id.channel_id.hex()}


class _NodeMethods:
    """The handlers, bound to one engine."""

    def __init__(self, engine: Engine, node_info: NodeInfo) -> None:
        self.engine = engine
        self.node_info = node_info

    async def get_address(self) -> str:
        return self.engine.address

    async def get_node_info(self) -> dict[str, JsonValue]:
        return self.node_info()

    async def create_ledger_channel(
        self,
        counterparty: str,
        amount: int,
        counterparty_amount: int,
        asset: str,
        challenge_duration: int | None,
        nonce: int | None,
    ) -> dict[str, JsonValue]:
        with _answering():
            objective_id = await self.engine.create_ledger_channel(
                counterparty,
                amount,
                counterparty_amount=counterparty_amount,
                asset=asset,
                challenge_duration=challenge_duration,
                nonce=nonce,
            )
        return _created(objective_id)

    async def close_ledger_channel(self, channel_id: bytes) -> dict[str, JsonValue]:
        with _answering():
            objective_id = await self.engine.close_ledger_channel(channel_id)
        return _created(objective_id)

    async def get_ledger_channel(self, channel_id: bytes) -> JsonValue:
        with _answering():
            return await self.engine.ledger_channel(channel_id)  # type: ignore[return-value]

    async def get_all_ledger_channels(self) -> JsonValue:
        return await self.engine.ledger_channels()  # type: ignore[return-value]

    async def create_payment_channel(
        self,
        counterparty: str,
        amount: int,
        intermediaries: list[str] | None,
        asset: str,
        challenge_duration: int | None,
        nonce: int | None,
    ) -> dict[str, JsonValue]:
        with _answering():
            objective_id = await self.engine.create_payment_channel(
                counterparty,
                intermediaries,
                amount,
                asset=asset,
                challenge_duration=challenge_duration,
                nonce=nonce,
            )
        return _created(objective_id)

    async def close_payment_channel(self, channel_id: bytes) -> dict[str, JsonValue]:
        with _answering():
            objective_id = await self.engine.close_payment_channel(channel_id)
        return _created(objective_id)

    async def pay(self, channel_id: bytes, amount: int, payments: int) -> dict[str, JsonValue]:
        with _answering():
            paid = await self.engine.pay(channel_id, amount, payments)
        return {"channel_id": "0x" + channel_id.hex(), "paid": str(paid), "payments": payments}

    async def get_payment_channel(self, channel_id: bytes) -> JsonValue:
        with _answering():
            return await self.engine.payment_channel(channel_id)  # type: ignore[return-value]

    async def get_payment_channels_by_ledger(self, channel_id: bytes) -> JsonValue:
        with _answering():
            channels = await self.engine.payment_channels_by_ledger(channel_id)
        return channels  # type: ignore[return-value]

    async def create_voucher(self, channel_id: bytes, amount: int) -> dict[str, JsonValue]:
        with _answering():
            voucher = await self.engine.create_voucher(channel_id, amount)
        return {
            "channel_id": "0x" + voucher.channel_id.hex(),
            "amount": str(voucher.amount),
            "signature": "0x" + voucher.signature.hex(),
        }

    async def receive_voucher(
        self, channel_id: bytes, amount: int, signature: bytes
    ) -> dict[str, JsonValue]:
        with _answering():
            received = await self.engine.receive_voucher(Voucher(channel_id, amount, signature))
        return {"channel_id": "0x" + channel_id.hex(), "received": str(received)}

    async def get_objective(self, objective_id: str) -> JsonValue:
        with _answering():
            return await self.engine.objective(_objective_id(objective_id))  # type: ignore[return-value]

    async def settle_payment_channel(
        self, channel_id: bytes, ledger_id: bytes | None
    ) -> dict[str, JsonValue]:
        """Start the settlement unless one runs or ran; answer where it stands."""
        with _answering():
            objective_id = await self.engine.settle_payment_channel(channel_id, ledger_id)
            return settlement_json(await self.engine.objective(objective_id))

    async def add_watchtower(self, tower: str) -> dict[str, JsonValue]:
        with _answering():
            added = await self.engine.add_watchtower(tower)
        return {"tower": tower, "added": added}

    async def get_watched_channel(self, channel_id: bytes) -> JsonValue:
        with _answering():
            return await self.engine.watched_channel(channel_id)  # type: ignore[return-value]

    async def get_watchtower(self) -> JsonValue:
        return await self.engine.watchtower_info()  # type: ignore[return-value]

    async def settle_ledger_channel(self, channel_id: bytes) -> dict[str, JsonValue]:
        """Start the ledger's exit unless one runs or ran; answer where it stands."""
        with _answering():
            objective_id = await self.engine.settle_ledger_channel(channel_id)
            return settlement_json(await self.engine.objective(objective_id))


def _objective_id(text: str) -> ObjectiveId:
    try:
        return parse_objective_id(text)
    except InvalidValueError as error:
        problem = f"invalid param 'objective_id': {error}"
        raise RpcError(ErrorCode.INVALID_PARAMS, problem) from None


def settlement_json(info: dict[str, object]) -> dict[str, JsonValue]:
    """A Settle objective's info as the settlement the API answers."""
    settlement = info.get("settlement") or {}
    assert isinstance(settlement, dict)
    waiting = info["waiting_for"]
    stage = "FAILED" if info["status"] == "FAILED" else _SETTLE_STAGES.get(str(waiting), "STARTED")
    return {
        "objective_id": info["id"],
        "channel_id": info["channel_id"],
        "stage": stage,
        "waiting_for": waiting,
        "failure": info["failure"],
        **settlement,
    }


_CHANNEL = [Param("channel_id", BYTES32)]
_CREATE = [
    Param("counterparty", ADDRESS),
    Param("amount", UINT256),
    Param("counterparty_amount", UINT256, required=False, default=0),
    Param("asset", ADDRESS, required=False, default=NATIVE_ASSET),
    Param(
        "challenge_duration",
        integer(0, constants.challenge_duration_s_max, name="seconds"),
        required=False,
        default=None,
    ),
    Param("nonce", UINT64, required=False, default=None),
]


_CREATE_PAYMENT = [
    Param("counterparty", ADDRESS),
    Param("amount", UINT256),
    Param(
        "intermediaries",
        list_of(ADDRESS, items_max=constants.virtual_intermediaries_max),
        required=False,
        default=None,
    ),
    *_CREATE[3:],
]
_PAY = [Param("channel_id", BYTES32), Param("amount", UINT256)]
_VOUCHER = [*_PAY, Param("signature", hex_bytes(size_bytes=constants.signature_bytes))]


def register_node_methods(registry: MethodRegistry, engine: Engine, node_info: NodeInfo) -> None:
    """Add the node's methods to ``registry`` (``version`` is built in)."""
    methods = _NodeMethods(engine, node_info)
    for name, params, description in (
        ("get_address", None, "The node's address."),
        ("get_node_info", None, "Address, peer id, multiaddrs, chain and derivation module."),
        ("create_ledger_channel", _CREATE, "Open and fund a ledger channel (DirectFund)."),
        ("close_ledger_channel", _CHANNEL, "Close a ledger channel, pay it out (DirectDefund)."),
        ("get_ledger_channel", _CHANNEL, "One ledger channel as the module derives it."),
        ("get_all_ledger_channels", None, "Every ledger channel, in channel id order."),
        (
            "create_payment_channel",
            _CREATE_PAYMENT,
            "Open a virtual channel (VirtualFund); no intermediaries: a route is found.",
        ),
        ("close_payment_channel", _CHANNEL, "Close a virtual channel we pay on (VirtualDefund)."),
        (
            "pay",
            [
                *_PAY,
                Param(
                    "payments",
                    integer(1, constants.rpc_pay_payments_max, name="payments"),
                    required=False,
                    default=1,
                ),
            ],
            "Pay `amount` more on a virtual channel (`payments` times, for high-rate callers);"
            " answered once the voucher covering it is logged, then sent.",
        ),
        ("get_payment_channel", _CHANNEL, "One virtual channel: funds, paid, received."),
        (
            "get_payment_channels_by_ledger",
            _CHANNEL,
            "The virtual channels whose path crosses this ledger channel's two parties.",
        ),
        ("create_voucher", _PAY, "Sign a voucher for `amount` more, logged but not sent."),
        ("receive_voucher", _VOUCHER, "Accept a voucher handed over out of band."),
        ("get_objective", [Param("objective_id", STRING)], "An objective and its pause point."),
        (
            "settle_ledger_channel",
            _CHANNEL,
            "Leave a ledger channel on chain without its counterparty (a Settle objective:"
            " challenge, wait, reclaim what it guarantees, pay out); again: where it stands.",
        ),
        (
            "settle_payment_channel",
            [*_CHANNEL, Param("ledger_id", BYTES32, required=False, default=None)],
            "Enforce a payment channel on chain through our ledger that funds it (a Settle"
            " objective, which goes on by itself); again: where it stands.",
        ),
        (
            "add_watchtower",
            [Param("tower", ADDRESS)],
            "Hand our channels to this watchtower from now on (it answers stale challenges"
            " while we are offline); false if it was one already.",
        ),
        (
            "get_watched_channel",
            _CHANNEL,
            "As a watchtower: what the clients handed over of a channel, and its dispute.",
        ),
        (
            "get_watchtower",
            None,
            "Our watchtowers, and what this node watches as one (clients, channels, the"
            " channels challenged now).",
        ),
    ):
        registry.register(name, getattr(methods, name), params=params, description=description)
