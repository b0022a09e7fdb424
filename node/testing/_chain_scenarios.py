"""A fixed sequence of adjudicator operations, run against our contracts or the
reference Nitro 2.x artifacts on the same anvil, for differential tests and the
gas report.

Each run starts from the same chain snapshot, deploys from the same account at
the same nonces (so contract addresses, hence channel ids, are equal) and
pins block timestamps, so two runs on equivalent contracts leave byte-equal
holdings, statuses, balances and logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode as abi_encode
from web3 import Web3

from node.chain import (
    ADJUDICATOR,
    ANVIL_DEV_KEYS,
    CONSENSUS_APP,
    TEST_TOKEN,
    VIRTUAL_PAYMENT_APP,
    ChainClient,
    ChainWatcher,
    TxResult,
    encode_outcome,
    fixed_part_tuple,
    load_artifact,
    load_reference_artifact,
    outcome_tuple,
    sign_state_tuples,
    signature_tuple,
    signed_variable_part,
)
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    encode_guarantee_metadata,
    state_hash,
)
from node.core.errors import ChainError

NATIVE = "0x0000000000000000000000000000000000000000"
ZERO32 = bytes(32)
# PROTOCOL.md §2 test actors: channel keys whose addresses hold nothing on anvil.
ALICE = Signer(bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d"))
BOB = Signer(bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4"))
IRENE = Signer(bytes.fromhex("febb3b74b0b52d0976f6571d555f4ac8b91c308dfa25c7b58d1e6a7c3f50c781"))
EXIT_FORMAT_GUARANTEE = 2  # the exit format's allocation type of a guarantee
_CHALLENGE_DURATION_S = 60
_TOKEN_SUPPLY = 10**24
_START_OFFSET_S = 1_000


@dataclass(frozen=True)
class Step:
    """One operation of a run.

    Attributes:
        name: what was done.
        result: "ok", or the ChainError message.
        gas_used: gas of the transaction (0 when it failed).
    """

    name: str
    result: str
    gas_used: int


@dataclass(frozen=True)
class ScenarioRun:
    """Everything observable after a run.

    Attributes:
        reference: whether the reference contracts ran.
        steps: the operations, in order.
        holdings: (asset, channel id hex, amount) of every channel touched.
        statuses: (channel id hex, statusOf hex).
        balances: (asset, address, amount) of every payee.
        logs: every adjudicator log as (block, index, topics, data).
        events: the watcher's ChainEvents, serialised, tx hashes cleared.
    """

    reference: bool
    steps: tuple[Step, ...]
    holdings: tuple[tuple[str, str, int], ...]
    statuses: tuple[tuple[str, str], ...]
    balances: tuple[tuple[str, str, int], ...]
    logs: tuple[tuple[int, int, tuple[str, ...], str], ...]
    events: tuple[bytes, ...]

    def gas(self, name: str) -> int:
        """Gas of the step called ``name``."""
        return next(step.gas_used for step in self.steps if step.name == name)


def _signed(state: State, signers: Sequence[Signer]) -> SignedState:
    signed = SignedState(state)
    for signer in signers:
        signed = signer.countersign(signed)
    return signed


def _simple(*pairs: tuple[Signer, int]) -> list[Allocation]:
    return [Allocation(address_to_destination(s.address), amount) for s, amount in pairs]


@dataclass
class _Runner:
    url: str
    reference: bool
    steps: list[Step] = field(default_factory=list)
    channels: set[bytes] = field(default_factory=set)
    deployer: ChainClient = field(init=False)
    alice_chain: ChainClient = field(init=False)
    bob_chain: ChainClient = field(init=False)

    def __post_init__(self) -> None:
        keys = [bytes.fromhex(k.removeprefix("0x")) for k in ANVIL_DEV_KEYS]
        self.deployer = ChainClient(self.url, keys[0])
        self.alice_chain = ChainClient(self.url, keys[1])
        self.bob_chain = ChainClient(self.url, keys[2])

    # ---------------------------------------------------------------- plumbing

    def record(self, name: str, action: Callable[[], TxResult | None]) -> None:
        try:
            result = action()
        except ChainError as error:
            self.steps.append(Step(name, str(error), 0))
            return
        self.steps.append(Step(name, "ok", result.gas_used if result else 0))

    def call(self, client: ChainClient, name: str, fn: str, *args: Any, value: int = 0) -> None:
        function = getattr(client.require_adjudicator().functions, fn)(*args)
        self.record(name, lambda: client.transact(name, function, value=value))

    def skip_time(self, seconds: int) -> None:
        latest = self.deployer.w3.eth.get_block("latest")
        self.deployer.rpc("time", "evm_setNextBlockTimestamp", int(latest["timestamp"]) + seconds)
        self.deployer.rpc("mine", "evm_mine")

    def deploy(self) -> None:
        load = load_reference_artifact if self.reference else load_artifact
        addresses = {}
        for name in (ADJUDICATOR, CONSENSUS_APP, VIRTUAL_PAYMENT_APP):
            result = self.deployer.deploy(load(name))
            self.steps.append(Step(f"deploy {name}", "ok", result.gas_used))
            addresses[name] = result.contract_address
        token = self.deployer.deploy(load_artifact(TEST_TOKEN), "Test", "TST", _TOKEN_SUPPLY)
        self.adjudicator = str(addresses[ADJUDICATOR])
        self.consensus_app = str(addresses[CONSENSUS_APP])
        self.virtual_app = str(addresses[VIRTUAL_PAYMENT_APP])
        self.token = str(token.contract_address)
        for client in (self.deployer, self.alice_chain, self.bob_chain):
            client.use_adjudicator(self.adjudicator)
        erc20 = self.deployer.contract(load_artifact(TEST_TOKEN), self.token)
        self.deployer.transact("fund", erc20.functions.transfer(self.alice_chain.address, 10**6))

    def fixed(self, nonce: int, signers: Sequence[Signer], app: str | None = None) -> FixedPart:
        fixed = FixedPart(
            [s.address for s in signers], nonce, app or self.consensus_app, _CHALLENGE_DURATION_S
        )
        self.channels.add(channel_id(fixed))
        return fixed

    def deposit(self, name: str, client: ChainClient, asset: str, cid: bytes, amount: int) -> None:
        held = client.holdings(asset, cid)
        self.call(client, name, "deposit", asset, cid, held, amount, value=amount)

    # ---------------------------------------------------------------- scenarios

    def funding(self) -> None:
        c1 = channel_id(self.fixed(1, [ALICE, BOB]))
        self.deposit("deposit native (first)", self.alice_chain, NATIVE, c1, 10)
        self.deposit("deposit native (second)", self.bob_chain, NATIVE, c1, 10)
        erc20 = self.alice_chain.contract(load_artifact(TEST_TOKEN), self.token)
        approve = erc20.functions.approve(self.adjudicator, 100)
        self.record("approve ERC20", lambda: self.alice_chain.transact("approve", approve))
        self.call(self.alice_chain, "deposit ERC20 (first)", "deposit", self.token, c1, 0, 100)
        bob_erc20 = self.bob_chain.contract(load_artifact(TEST_TOKEN), self.token)
        bob_approve = bob_erc20.functions.approve(self.adjudicator, 5)
        self.record("approve ERC20 (no balance)", lambda: self.bob_chain.transact("a", bob_approve))
        no_balance = ("deposit", self.token, c1, 100, 5)
        self.call(self.bob_chain, "deposit ERC20 without balance", *no_balance)
        self.call(self.alice_chain, "deposit held mismatch", "deposit", NATIVE, c1, 0, 1, value=1)
        self.call(self.alice_chain, "deposit wrong value", "deposit", NATIVE, c1, 20, 2, value=1)

    def happy_exits(self) -> None:
        fixed = self.fixed(1, [ALICE, BOB])
        exits = [
            SingleAssetExit(NATIVE, _simple((ALICE, 12), (BOB, 8))),
            SingleAssetExit(self.token, _simple((ALICE, 30), (BOB, 70))),
        ]
        final = _signed(State(fixed, b"", exits, 9, True), [ALICE, BOB])
        self.conclude("concludeAndTransferAllAssets (2 assets)", final)
        fixed = self.fixed(2, [ALICE, BOB])
        self.deposit(
            "deposit native (new channel)", self.alice_chain, NATIVE, channel_id(fixed), 10
        )
        exits = [SingleAssetExit(NATIVE, _simple((ALICE, 4), (BOB, 6)))]
        state = State(fixed, b"", exits, 3, True)
        self.conclude("conclude not unanimous", _signed(state, [ALICE]))
        self.conclude("concludeAndTransferAllAssets", _signed(state, [ALICE, BOB]))
        self.conclude("conclude again after full payout", _signed(state, [ALICE, BOB]))

    def conclude(
        self, name: str, final: SignedState, fn: str = "concludeAndTransferAllAssets"
    ) -> None:
        args = (fixed_part_tuple(final.state), signed_variable_part(final))
        self.call(self.bob_chain, name, fn, *args)

    def underfunded(self) -> None:
        fixed = self.fixed(3, [ALICE, BOB])
        cid = channel_id(fixed)
        self.deposit("deposit native (underfunded)", self.alice_chain, NATIVE, cid, 5)
        exits = [SingleAssetExit(NATIVE, _simple((ALICE, 4), (BOB, 4)))]
        self.conclude(
            "conclude underfunded", _signed(State(fixed, b"", exits, 3, True), [ALICE, BOB])
        )
        self.deposit("deposit into finalized", self.alice_chain, NATIVE, cid, 3)
        rest = outcome_tuple([SingleAssetExit(NATIVE, _simple((ALICE, 0), (BOB, 3)))])
        self.call(
            self.bob_chain, "transferAllAssets (rest)", "transferAllAssets", cid, rest, ZERO32
        )

    def disputes(self) -> None:
        fixed = self.fixed(4, [ALICE, BOB])
        cid = channel_id(fixed)
        self.deposit("deposit native (dispute)", self.alice_chain, NATIVE, cid, 10)

        def state(turn: int, alice: int) -> SignedState:
            exits = [SingleAssetExit(NATIVE, _simple((ALICE, alice), (BOB, 10 - alice)))]
            return _signed(State(fixed, b"", exits, turn, False), [ALICE, BOB])

        self.challenge("challenge", state(5, 3), BOB)
        self.checkpoint("checkpoint (clears challenge)", state(6, 5))
        self.challenge("challenge stale", state(4, 0), BOB)
        self.checkpoint("checkpoint (open channel)", state(7, 6))
        self.challenge("challenge by non-participant", state(8, 8), IRENE)
        last = state(8, 8)
        self.challenge("challenge (to finalize)", last, ALICE)
        self.challenge("challenge same turn", state(8, 1), ALICE)
        transfer = (
            "transferAllAssets",
            cid,
            outcome_tuple(last.state.outcome),
            state_hash(last.state),
        )
        self.call(self.bob_chain, "transferAllAssets too early", *transfer)
        self.skip_time(_CHALLENGE_DURATION_S + 1)
        self.checkpoint("checkpoint finalized", state(9, 5))
        self.call(self.bob_chain, "transferAllAssets (after challenge)", *transfer)

    def challenge(
        self,
        name: str,
        candidate: SignedState,
        challenger: Signer,
        proof: Sequence[SignedState] = (),
    ) -> None:
        args = (
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
            signature_tuple(challenger.sign_challenge(candidate.state)),
        )
        self.call(self.bob_chain, name, "challenge", *args)

    def checkpoint(
        self, name: str, candidate: SignedState, proof: Sequence[SignedState] = ()
    ) -> None:
        args = (
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
        )
        self.call(self.alice_chain, name, "checkpoint", *args)

    def partial_transfers(self) -> None:
        fixed = self.fixed(5, [ALICE, BOB])
        cid = channel_id(fixed)
        self.deposit("deposit native (transfer)", self.alice_chain, NATIVE, cid, 10)
        exits = [SingleAssetExit(NATIVE, _simple((ALICE, 6), (BOB, 4)))]
        candidate = _signed(State(fixed, b"", exits, 2, False), [ALICE, BOB])
        self.challenge("challenge (for transfer)", candidate, ALICE)
        self.skip_time(_CHALLENGE_DURATION_S + 1)
        digest = state_hash(candidate.state)
        encoded = encode_outcome(outcome_tuple(exits))
        self.call(self.bob_chain, "transfer unsorted", "transfer", 0, cid, encoded, digest, [1, 0])
        self.call(self.bob_chain, "transfer [1]", "transfer", 0, cid, encoded, digest, [1])
        rest = encode_outcome(
            outcome_tuple([SingleAssetExit(NATIVE, _simple((ALICE, 6), (BOB, 0)))])
        )
        self.call(
            self.bob_chain, "transfer stale outcome", "transfer", 0, cid, encoded, digest, [0]
        )
        self.call(self.bob_chain, "transfer [0]", "transfer", 0, cid, rest, digest, [0])

    def core_guarantee(self) -> None:
        """A guarantee as node.core writes it (type 2), concluded and transferred."""
        ledger = self.fixed(6, [ALICE, BOB])
        target = channel_id(self.fixed(60, [ALICE, IRENE, BOB], self.virtual_app))
        metadata = encode_guarantee_metadata(
            address_to_destination(ALICE.address), address_to_destination(BOB.address)
        )
        allocations = [*_simple((ALICE, 5), (BOB, 5)), Allocation(target, 10, 2, metadata)]
        self.deposit("deposit native (ledger)", self.alice_chain, NATIVE, channel_id(ledger), 20)
        final = State(ledger, b"", [SingleAssetExit(NATIVE, allocations)], 4, True)
        self.conclude("concludeAndTransferAllAssets (core guarantee)", _signed(final, [ALICE, BOB]))

    def reclaim(self) -> None:
        """A ledger (Alice, Irene) guaranteeing a virtual channel (Alice, Irene, Bob)."""
        ledger = self.fixed(7, [ALICE, IRENE])
        virtual = self.fixed(70, [ALICE, IRENE, BOB], self.virtual_app)
        lid, vid = channel_id(ledger), channel_id(virtual)
        alice, irene, bob = (address_to_destination(s.address) for s in (ALICE, IRENE, BOB))
        guarantee = (
            vid,
            10,
            EXIT_FORMAT_GUARANTEE,
            abi_encode(["bytes32", "bytes32"], [alice, irene]),
        )
        ledger_outcome = [(NATIVE, (0, b""), [(alice, 5, 0, b""), (irene, 5, 0, b""), guarantee])]
        virtual_outcome = [(NATIVE, (0, b""), [(alice, 7, 0, b""), (bob, 3, 0, b"")])]
        self.deposit("deposit native (guarantee ledger)", self.alice_chain, NATIVE, lid, 20)
        ledger_fixed = fixed_part_tuple(State(ledger, b"", [], 0, False))
        virtual_fixed = fixed_part_tuple(State(virtual, b"", [], 0, False))
        ledger_final = self.raw_signed(ledger_fixed, ledger_outcome, [ALICE, IRENE])
        virtual_final = self.raw_signed(virtual_fixed, virtual_outcome, [ALICE, IRENE, BOB])
        self.call(
            self.bob_chain,
            "transfer a guarantee",
            "concludeAndTransferAllAssets",
            ledger_fixed,
            ledger_final,
        )
        self.call(self.bob_chain, "conclude ledger", "conclude", ledger_fixed, ledger_final)
        args = (
            lid,
            ZERO32,
            encode_outcome(ledger_outcome),
            0,
            2,
            ZERO32,
            encode_outcome(virtual_outcome),
            0,
        )
        self.call(self.bob_chain, "reclaim before target final", "reclaim", args)
        self.call(self.bob_chain, "conclude virtual", "conclude", virtual_fixed, virtual_final)
        self.call(self.bob_chain, "reclaim wrong index", "reclaim", (*args[:4], 1, *args[5:]))
        self.call(self.bob_chain, "reclaim", "reclaim", args)
        folded = [(NATIVE, (0, b""), [(alice, 12, 0, b""), (irene, 8, 0, b"")])]
        self.call(
            self.bob_chain,
            "transferAllAssets (after reclaim)",
            "transferAllAssets",
            lid,
            folded,
            ZERO32,
        )

    def raw_signed(self, fixed: Any, outcome: Any, signers: Sequence[Signer]) -> Any:
        variable = (outcome, b"", 5, True)
        sigs = [signature_tuple(sign_state_tuples(fixed, variable, s.private_key)) for s in signers]
        return (variable, sigs)

    def virtual_payment(self) -> None:
        fixed = self.fixed(8, [ALICE, IRENE, BOB], self.virtual_app)
        cid = channel_id(fixed)
        self.deposit("deposit native (virtual)", self.alice_chain, NATIVE, cid, 10)
        postfund = _signed(
            State(fixed, b"", [SingleAssetExit(NATIVE, _simple((ALICE, 10), (BOB, 0)))], 1, False),
            [ALICE, IRENE, BOB],
        )
        voucher = ALICE.sign_voucher(cid, 3)
        app_data = abi_encode(
            ["(uint256,(uint8,bytes32,bytes32))"], [(3, signature_tuple(voucher))]
        )

        def redemption(alice: int, bob: int) -> SignedState:
            exits = [SingleAssetExit(NATIVE, _simple((ALICE, alice), (BOB, bob)))]
            return _signed(State(fixed, app_data, exits, 2, False), [BOB])

        self.challenge("challenge voucher overpaid", redemption(6, 4), BOB, [postfund])
        self.challenge("challenge without proof", redemption(7, 3), BOB)
        self.challenge("challenge (voucher redemption)", redemption(7, 3), BOB, [postfund])
        self.skip_time(_CHALLENGE_DURATION_S + 1)
        redeemed = redemption(7, 3).state
        self.call(
            self.bob_chain,
            "transferAllAssets (virtual)",
            "transferAllAssets",
            cid,
            outcome_tuple(redeemed.outcome),
            state_hash(redeemed),
        )

    # ---------------------------------------------------------------- observe

    def observe(self, from_block: int) -> ScenarioRun:
        reader = self.deployer
        erc20 = reader.contract(load_artifact(TEST_TOKEN), self.token)
        holdings, statuses = [], []
        for cid in sorted(self.channels):
            for asset in (NATIVE, self.token):
                holdings.append((asset, cid.hex(), reader.holdings(asset, cid)))
            status = reader.call("statusOf", reader.require_adjudicator().functions.statusOf(cid))
            statuses.append((cid.hex(), bytes(status).hex()))
        balances = []
        for signer in (ALICE, BOB, IRENE):
            balances.append((NATIVE, signer.address, reader.balance(signer.address)))
            token_balance = reader.call("balanceOf", erc20.functions.balanceOf(signer.address))
            balances.append((self.token, signer.address, int(token_balance)))
        raw = reader.w3.eth.get_logs(
            {"address": Web3.to_checksum_address(self.adjudicator), "fromBlock": from_block}
        )
        logs = tuple(
            (
                int(log["blockNumber"]),
                int(log["logIndex"]),
                tuple(bytes(t).hex() for t in log["topics"]),
                bytes(log["data"]).hex(),
            )
            for log in raw
        )
        events = []
        for event in ChainWatcher(reader, from_block=from_block).poll().events:
            event.tx_hash = b""
            events.append(event.SerializeToString(deterministic=True))
        return ScenarioRun(
            self.reference,
            tuple(self.steps),
            tuple(holdings),
            tuple(statuses),
            tuple(balances),
            logs,
            tuple(events),
        )


def run_scenarios(rpc_url: str, *, reference: bool) -> ScenarioRun:
    """Runs the whole sequence on the anvil at ``rpc_url`` and rewinds the chain.

    Args:
        rpc_url: an anvil (it needs evm_snapshot and timestamp control).
        reference: run the reference Nitro artifacts instead of ours.
    """
    runner = _Runner(rpc_url, reference)
    client = runner.deployer
    snapshot = client.rpc("snapshot", "evm_snapshot")
    try:
        latest = client.w3.eth.get_block("latest")
        client.rpc("time", "evm_setNextBlockTimestamp", int(latest["timestamp"]) + _START_OFFSET_S)
        client.rpc("time", "anvil_setBlockTimestampInterval", 1)
        start = client.block_number() + 1
        runner.deploy()
        runner.funding()
        runner.happy_exits()
        runner.underfunded()
        runner.disputes()
        runner.partial_transfers()
        runner.core_guarantee()
        runner.reclaim()
        runner.virtual_payment()
        return runner.observe(start)
    finally:
        client.rpc("time", "anvil_removeBlockTimestampInterval")
        client.rpc("revert", "evm_revert", snapshot)
