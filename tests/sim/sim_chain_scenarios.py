"""A fixed set of adjudicator scenarios, run through the ``ChainService`` interface the
engine uses, on anvil (the real contracts) or on the simulated chain: the differential
test compares what each leaves (results and revert reasons, holdings, status words,
payouts, raw logs and the watcher's events) byte for byte.

Every transaction gets a block of its own, one second after the one before, on both
chains; ``skip_time`` mines an empty block later. Channel participants are the
PROTOCOL.md actors, which hold nothing on either chain; two funded accounts send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.chain import ReclaimRequest
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    encode_exit,
    encode_guarantee_metadata,
    state_hash,
)
from node.core.errors import ChainError
from tests.actors import ALICE, BOB, IRENE
from tests.sim.sim_adjudicator import NATIVE, Contracts

CHALLENGE_DURATION_S = 60
TOKEN_FUNDS = 10**6  # the first sender's tokens


class Service(Protocol):
    """What the scenarios call (``ChainService`` and ``SimChainService`` alike)."""

    async def deposit(
        self, asset: str, channel: bytes, expected_held: int, amount: int
    ) -> object: ...
    async def conclude_and_transfer_all_assets(self, final: SignedState) -> object: ...
    async def conclude(self, final: SignedState) -> object: ...
    async def challenge(
        self, candidate: SignedState, challenger_signature: bytes, proof: Sequence[SignedState] = ()
    ) -> object: ...
    async def checkpoint(
        self, candidate: SignedState, proof: Sequence[SignedState] = ()
    ) -> object: ...
    async def transfer_all_assets(
        self, finalized: State, *, by_conclude: bool = False
    ) -> object: ...
    async def reclaim(self, request: ReclaimRequest) -> object: ...
    async def transfer(
        self,
        asset_index: int,
        channel: bytes,
        outcome: bytes,
        state_hash_: bytes,
        indices: Sequence[int] = (),
    ) -> object: ...


class Backend(Protocol):
    """One chain the scenarios run on."""

    contracts: Contracts
    first: Service  # the sender funded with tokens
    second: Service

    async def skip_time(self, seconds: int) -> None: ...


@dataclass
class Run:
    """What the steps said, and the channels they touched."""

    backend: Backend
    steps: list[tuple[str, str]] = field(default_factory=list)
    channels: list[bytes] = field(default_factory=list)

    async def step(self, name: str, action: Callable[[], Awaitable[object]]) -> None:
        try:
            await action()
        except ChainError as error:
            self.steps.append((name, str(error)))
            return
        self.steps.append((name, "ok"))

    def fixed(self, nonce: int, signers: Sequence[Signer], app: str | None = None) -> FixedPart:
        contracts = self.backend.contracts
        fixed = FixedPart(
            [s.address for s in signers],
            nonce,
            app or contracts.consensus_app,
            CHALLENGE_DURATION_S,
        )
        if channel_id(fixed) not in self.channels:
            self.channels.append(channel_id(fixed))
        return fixed


def signed(state: State, signers: Sequence[Signer]) -> SignedState:
    result = SignedState(state)
    for signer in signers:
        result = signer.countersign(result)
    return result


def simple(asset: str, *pairs: tuple[Signer, int]) -> SingleAssetExit:
    return SingleAssetExit(
        asset, [Allocation(address_to_destination(s.address), amount) for s, amount in pairs]
    )


async def funding(run: Run) -> None:
    first, second, token = run.backend.first, run.backend.second, run.backend.contracts.token
    c1 = channel_id(run.fixed(1, [ALICE, BOB]))
    await run.step("deposit native (first)", lambda: first.deposit(NATIVE, c1, 0, 10))
    await run.step("deposit native (second)", lambda: second.deposit(NATIVE, c1, 10, 10))
    await run.step("deposit ERC20 (first)", lambda: first.deposit(token, c1, 0, 100))
    await run.step("deposit ERC20 without balance", lambda: second.deposit(token, c1, 100, 5))
    await run.step("deposit held mismatch", lambda: first.deposit(NATIVE, c1, 0, 1))
    external = address_to_destination(ALICE.address)
    await run.step("deposit to external", lambda: first.deposit(NATIVE, external, 0, 1))


async def happy_exits(run: Run) -> None:
    second, token = run.backend.second, run.backend.contracts.token
    fixed = run.fixed(1, [ALICE, BOB])
    exits = [simple(NATIVE, (ALICE, 12), (BOB, 8)), simple(token, (ALICE, 30), (BOB, 70))]
    final = signed(State(fixed, b"", exits, 9, True), [ALICE, BOB])
    await run.step(
        "concludeAndTransferAllAssets (2 assets)",
        lambda: second.conclude_and_transfer_all_assets(final),
    )
    fixed = run.fixed(2, [ALICE, BOB])
    cid = channel_id(fixed)
    await run.step(
        "deposit native (new channel)", lambda: run.backend.first.deposit(NATIVE, cid, 0, 10)
    )
    state = State(fixed, b"", [simple(NATIVE, (ALICE, 4), (BOB, 6))], 3, True)
    lone = signed(state, [ALICE])
    both = signed(state, [ALICE, BOB])
    await run.step("conclude not unanimous", lambda: second.conclude_and_transfer_all_assets(lone))
    await run.step(
        "concludeAndTransferAllAssets", lambda: second.conclude_and_transfer_all_assets(both)
    )
    await run.step(
        "conclude again after payout", lambda: second.conclude_and_transfer_all_assets(both)
    )
    not_final = signed(State(fixed, b"", state.outcome, 4, False), [ALICE, BOB])
    await run.step("conclude a state not final", lambda: second.conclude(not_final))


async def underfunded(run: Run) -> None:
    first, second = run.backend.first, run.backend.second
    fixed = run.fixed(3, [ALICE, BOB])
    cid = channel_id(fixed)
    await run.step("deposit native (underfunded)", lambda: first.deposit(NATIVE, cid, 0, 5))
    final = signed(State(fixed, b"", [simple(NATIVE, (ALICE, 4), (BOB, 4))], 3, True), [ALICE, BOB])
    await run.step("conclude underfunded", lambda: second.conclude_and_transfer_all_assets(final))
    await run.step("deposit into finalized", lambda: first.deposit(NATIVE, cid, 0, 3))
    rest = State(fixed, b"", [simple(NATIVE, (ALICE, 0), (BOB, 3))], 3, True)
    await run.step(
        "transferAllAssets (rest)", lambda: second.transfer_all_assets(rest, by_conclude=True)
    )
    await run.step(
        "transferAllAssets (rest again)", lambda: second.transfer_all_assets(rest, by_conclude=True)
    )


async def disputes(run: Run) -> None:
    first, second = run.backend.first, run.backend.second
    fixed = run.fixed(4, [ALICE, BOB])
    cid = channel_id(fixed)
    await run.step("deposit native (dispute)", lambda: first.deposit(NATIVE, cid, 0, 10))

    def state(turn: int, alice: int) -> SignedState:
        exits = [simple(NATIVE, (ALICE, alice), (BOB, 10 - alice))]
        return signed(State(fixed, b"", exits, turn, False), [ALICE, BOB])

    def challenge(name: str, candidate: SignedState, challenger: Signer) -> Awaitable[None]:
        signature = challenger.sign_challenge(candidate.state)
        return run.step(name, lambda: second.challenge(candidate, signature))

    await challenge("challenge", state(5, 3), BOB)
    await run.step("checkpoint (clears challenge)", lambda: first.checkpoint(state(6, 5)))
    await challenge("challenge stale", state(4, 0), BOB)
    await run.step("checkpoint (open channel)", lambda: first.checkpoint(state(7, 6)))
    await run.step("checkpoint same turn", lambda: first.checkpoint(state(7, 6)))
    await challenge("challenge by non-participant", state(8, 8), IRENE)
    lone = signed(State(fixed, b"", state(8, 8).state.outcome, 8, False), [ALICE])
    await challenge("challenge not unanimous", lone, ALICE)
    last = state(8, 8)
    await challenge("challenge (to finalize)", last, ALICE)
    await challenge("challenge same turn", state(8, 1), ALICE)
    await challenge("challenge later turn", state(9, 7), BOB)
    await run.step(
        "transferAllAssets too early", lambda: second.transfer_all_assets(state(9, 7).state)
    )
    await run.backend.skip_time(CHALLENGE_DURATION_S + 1)
    await run.step("checkpoint finalized", lambda: first.checkpoint(state(10, 5)))
    await challenge("challenge finalized", state(10, 5), BOB)
    await run.step("transferAllAssets stale state", lambda: second.transfer_all_assets(last.state))
    await run.step(
        "transferAllAssets (after challenge)", lambda: second.transfer_all_assets(state(9, 7).state)
    )


async def partial_transfers(run: Run) -> None:
    first, second = run.backend.first, run.backend.second
    fixed = run.fixed(5, [ALICE, BOB])
    cid = channel_id(fixed)
    await run.step("deposit native (transfer)", lambda: first.deposit(NATIVE, cid, 0, 10))
    exits = [simple(NATIVE, (ALICE, 6), (BOB, 4))]
    candidate = signed(State(fixed, b"", exits, 2, False), [ALICE, BOB])
    signature = ALICE.sign_challenge(candidate.state)
    await run.step("challenge (for transfer)", lambda: second.challenge(candidate, signature))
    await run.backend.skip_time(CHALLENGE_DURATION_S + 1)
    digest = state_hash(candidate.state)
    encoded = encode_exit(exits)
    rest = encode_exit([simple(NATIVE, (ALICE, 6), (BOB, 0))])
    for name, outcome, indices in (
        ("transfer unsorted", encoded, [1, 0]),
        ("transfer [1]", encoded, [1]),
        ("transfer stale outcome", encoded, [0]),
        ("transfer [0]", rest, [0]),
    ):
        await run.step(
            name,
            lambda o=outcome, i=indices: second.transfer(0, cid, o, digest, i),  # type: ignore[misc]
        )


async def guarantees(run: Run) -> None:
    """A ledger (Alice, Irene) guaranteeing a virtual channel (Alice, Irene, Bob):
    concluded, reclaimed, paid out."""
    first, second = run.backend.first, run.backend.second
    ledger = run.fixed(7, [ALICE, IRENE])
    virtual = run.fixed(70, [ALICE, IRENE, BOB], run.backend.contracts.payment_app)
    lid, vid = channel_id(ledger), channel_id(virtual)
    alice, irene = address_to_destination(ALICE.address), address_to_destination(IRENE.address)
    guarantee = Allocation(vid, 10, 2, encode_guarantee_metadata(alice, irene))
    ledger_exit = SingleAssetExit(NATIVE, [Allocation(alice, 5), Allocation(irene, 5), guarantee])
    virtual_exit = simple(NATIVE, (ALICE, 7), (BOB, 3))
    await run.step("deposit native (guarantee ledger)", lambda: first.deposit(NATIVE, lid, 0, 20))
    ledger_final = signed(State(ledger, b"", [ledger_exit], 5, True), [ALICE, IRENE])
    virtual_final = signed(State(virtual, b"", [virtual_exit], 5, True), [ALICE, IRENE, BOB])
    await run.step(
        "transfer a guarantee", lambda: second.conclude_and_transfer_all_assets(ledger_final)
    )
    await run.step("conclude ledger", lambda: second.conclude(ledger_final))
    request = ReclaimRequest(
        lid, bytes(32), encode_exit([ledger_exit]), 0, 2, bytes(32), encode_exit([virtual_exit]), 0
    )
    await run.step("reclaim before target final", lambda: second.reclaim(request))
    await run.step("conclude virtual", lambda: second.conclude(virtual_final))
    wrong = dataclasses.replace(request, index_of_target_in_source=1)
    await run.step("reclaim wrong index", lambda: second.reclaim(wrong))
    await run.step("reclaim", lambda: second.reclaim(request))
    await run.step("reclaim again", lambda: second.reclaim(request))
    folded = State(ledger, b"", [simple(NATIVE, (ALICE, 12), (IRENE, 8))], 5, True)
    await run.step(
        "transferAllAssets (after reclaim)",
        lambda: second.transfer_all_assets(folded, by_conclude=True),
    )


def redemption_data(cid: bytes, amount: int) -> bytes:
    """A voucher as a redemption state's appData (VirtualPaymentApp)."""
    from eth_abi.abi import encode as abi_encode

    from node.chain import signature_tuple

    voucher = ALICE.sign_voucher(cid, amount)
    return abi_encode(["(uint256,(uint8,bytes32,bytes32))"], [(amount, signature_tuple(voucher))])


async def settlement(run: Run) -> None:
    """What a Settle objective does: challenge a ledger and the virtual channel it
    guarantees (the payee's redemption), wait, reclaim with the challenged states,
    transfer the ledger's remaining outcome; the stale and early attempts fail."""
    first, second = run.backend.first, run.backend.second
    contracts = run.backend.contracts
    ledger = run.fixed(8, [ALICE, IRENE])
    virtual = run.fixed(80, [ALICE, IRENE, BOB], contracts.payment_app)
    lid, vid = channel_id(ledger), channel_id(virtual)
    alice, irene = address_to_destination(ALICE.address), address_to_destination(IRENE.address)
    guarantee = Allocation(vid, 10, 2, encode_guarantee_metadata(alice, irene))
    ledger_exit = SingleAssetExit(NATIVE, [Allocation(alice, 5), Allocation(irene, 5), guarantee])
    await run.step("deposit native (settled ledger)", lambda: first.deposit(NATIVE, lid, 0, 20))
    ledger_state = signed(State(ledger, b"", [ledger_exit], 4, False), [ALICE, IRENE])
    challenge_sig = IRENE.sign_challenge(ledger_state.state)
    await run.step("challenge ledger", lambda: second.challenge(ledger_state, challenge_sig))
    postfund = signed(
        State(virtual, b"", [simple(NATIVE, (ALICE, 10), (BOB, 0))], 1, False), [ALICE, IRENE, BOB]
    )

    def redemption(alice_amount: int, bob_amount: int, paid: int) -> SignedState:
        exits = [simple(NATIVE, (ALICE, alice_amount), (BOB, bob_amount))]
        return signed(State(virtual, redemption_data(vid, paid), exits, 2, False), [BOB])

    def counter(name: str, candidate: SignedState, proof: Sequence[SignedState]) -> Awaitable[None]:
        signature = BOB.sign_challenge(candidate.state)
        return run.step(name, lambda: second.challenge(candidate, signature, proof))

    await counter("challenge voucher overpaid", redemption(6, 4, 3), [postfund])
    await counter("challenge without proof", redemption(7, 3, 3), [])
    await counter("challenge postfund", postfund, [])
    await counter("challenge (voucher redemption)", redemption(7, 3, 3), [postfund])
    virtual_hash = state_hash(redemption(7, 3, 3).state)
    virtual_exit = encode_exit(redemption(7, 3, 3).state.outcome)
    request = ReclaimRequest(
        lid,
        state_hash(ledger_state.state),
        encode_exit([ledger_exit]),
        0,
        2,
        virtual_hash,
        virtual_exit,
        0,
    )
    await run.step("reclaim too early", lambda: second.reclaim(request))
    await run.backend.skip_time(CHALLENGE_DURATION_S + 1)
    await run.step("reclaim (challenged)", lambda: second.reclaim(request))
    folded = encode_exit([simple(NATIVE, (ALICE, 12), (IRENE, 8))])
    await run.step(
        "transfer ledger (after reclaim)",
        lambda: second.transfer(0, lid, folded, state_hash(ledger_state.state), ()),
    )
    await run.step(
        "transfer ledger again",
        lambda: second.transfer(0, lid, folded, state_hash(ledger_state.state), ()),
    )


SCENARIOS: tuple[Callable[[Run], Awaitable[None]], ...] = (
    funding,
    happy_exits,
    underfunded,
    disputes,
    partial_transfers,
    guarantees,
    settlement,
)


async def run_scenarios(backend: Backend) -> Run:
    """Every scenario in order on ``backend``."""
    run = Run(backend)
    for scenario in SCENARIOS:
        await scenario(run)
    return run


@dataclass(frozen=True)
class Observed:
    """What a chain shows after the scenarios (compared between chains)."""

    steps: tuple[tuple[str, str], ...]
    holdings: tuple[tuple[str, str, int], ...]
    statuses: tuple[tuple[str, str], ...]
    balances: tuple[tuple[str, str, int], ...]
    logs: tuple[tuple[Any, ...], ...]
    events: tuple[bytes, ...]


def observe_sim(chain: Any, run: Run, from_block: int) -> Observed:
    """What the simulated ``chain`` shows after ``run`` (blocks from ``from_block``)."""
    from node.chain import ChainWatcher
    from tests.sim.sim_chain import SimClient

    state = chain.state
    assets = (NATIVE, run.backend.contracts.token)
    holdings = tuple(
        (asset, cid.hex(), state.held(asset, cid)) for cid in run.channels for asset in assets
    )
    statuses = tuple((cid.hex(), state.status.get(cid, bytes(32)).hex()) for cid in run.channels)
    balances = tuple(
        (asset, signer.address, state.balance(asset, signer.address))
        for signer in (ALICE, BOB, IRENE)
        for asset in assets
    )
    logs = tuple(_log_key(log) for block in chain.blocks[from_block:] for log in block.logs)
    watcher = ChainWatcher(SimClient(chain), from_block=from_block)  # type: ignore[arg-type]
    return Observed(tuple(run.steps), holdings, statuses, balances, logs, _events(watcher))


def _log_key(log: Any) -> tuple[Any, ...]:
    return (
        int(log["blockNumber"]),
        int(log["logIndex"]),
        str(log["address"]).lower(),
        tuple(bytes(topic).hex() for topic in log["topics"]),
        bytes(log["data"]).hex(),
    )


def _events(watcher: Any) -> tuple[bytes, ...]:
    events = []
    for event in watcher.poll().events:
        event.tx_hash = b""
        events.append(event.SerializeToString(deterministic=True))
    return tuple(events)


def observe_anvil(client: Any, run: Run, from_block: int) -> Observed:
    """What anvil shows after ``run``; ``client`` knows the adjudicator."""
    from web3 import Web3

    from node.chain import TEST_TOKEN, ChainWatcher, load_artifact

    contracts = run.backend.contracts
    adjudicator = client.require_adjudicator()
    erc20 = client.contract(load_artifact(TEST_TOKEN), contracts.token)
    assets = (NATIVE, contracts.token)
    holdings = tuple(
        (asset, cid.hex(), client.holdings(asset, cid)) for cid in run.channels for asset in assets
    )
    statuses = tuple(
        (cid.hex(), bytes(client.call("statusOf", adjudicator.functions.statusOf(cid))).hex())
        for cid in run.channels
    )
    balances = []
    for signer in (ALICE, BOB, IRENE):
        balances.append((NATIVE, signer.address, client.balance(signer.address)))
        token = client.call("balanceOf", erc20.functions.balanceOf(signer.address))
        balances.append((contracts.token, signer.address, int(token)))
    raw = client.w3.eth.get_logs({"fromBlock": from_block, "toBlock": "latest"})
    addresses = {Web3.to_checksum_address(a) for a in (contracts.adjudicator, contracts.token)}
    logs = tuple(_log_key(log) for log in raw if log["address"] in addresses)
    watcher = ChainWatcher(client, from_block=from_block)
    return Observed(tuple(run.steps), holdings, statuses, tuple(balances), logs, _events(watcher))
