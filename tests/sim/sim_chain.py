"""A simulated chain: blocks mined on virtual time, a mempool, reorgs, and the
adjudicator's rules (``sim_adjudicator``), behind the ``ChainService`` interface the
engine uses.

The real ``ChainWatcher`` reads it: ``SimChain`` answers the few JSON-RPC reads the
watcher makes (block number, logs, block headers, transactions) from its blocks, so
confirmations, back-fill and reorg detection run the node's own code. Only the
watcher's polling loop is replayed here (``SimChainService.run``), without the worker
thread, so that a run is a function of its seed.

Faults, each from the world's random stream: blocks at uneven intervals,
transactions held back a few blocks or dropped from the mempool (the service sends
them again, as ``ChainClient.wait`` does), and reorgs that replace the newest blocks
(their transactions go back to the mempool and run again, perhaps with another
result).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound

from node.chain import (
    ADJUDICATOR,
    TEST_TOKEN,
    ChainWatcher,
    ChannelStatus,
    ReclaimRequest,
    Submitted,
    TxResult,
    fixed_part_tuple,
    load_artifact,
    outcome_tuple,
    signature_tuple,
    signed_variable_part,
)
from node.core import SignedState, State, channel_id, keccak256, state_hash
from node.core.errors import ChainError
from node.proto import log_pb2
from tests.sim.sim_adjudicator import (
    NATIVE,
    Contracts,
    EventCodec,
    Execution,
    LogEntry,
    Revert,
    WorldState,
    unpack_status,
)

OnSubmitted = Callable[[Submitted], Awaitable[None]]
Deliver = Callable[[log_pb2.ChainEvent], Awaitable[None]]

SIM_CONTRACTS: Final = Contracts(
    adjudicator=Web3.to_checksum_address("0x" + "a1" * 20),
    consensus_app=Web3.to_checksum_address("0x" + "c0" * 20),
    payment_app=Web3.to_checksum_address("0x" + "b0" * 20),
    token=Web3.to_checksum_address("0x" + "70" * 20),
)
POLL_INTERVAL_S: Final = 0.2  # the watcher's (constants.chain_poll_interval_ms)
RESEND_AFTER_S: Final = 30.0  # constants.chain_resend_after_ms
RESENDS_MAX: Final = 5  # constants.chain_resends_max
GENESIS_TIME_S: Final = 1_700_000_000


@dataclass(frozen=True)
class ChainFaults:
    """How unkind the chain is (all probabilities per block, or per transaction).

    Attributes:
        block_interval_s: (shortest, longest) time between two blocks.
        hold_back: chance that a pending transaction waits for a later block.
        drop: chance that a pending transaction leaves the mempool unmined.
        reorg: chance, at each block, that the newest blocks are replaced first.
        reorg_depth_max: the most blocks a reorg replaces.
    """

    block_interval_s: tuple[float, float] = (1.0, 1.0)
    hold_back: float = 0.0
    drop: float = 0.0
    reorg: float = 0.0
    reorg_depth_max: int = 0


@dataclass
class Tx:
    """A transaction as sent."""

    hash: bytes
    sender: str
    nonce: int
    to: str
    function: str
    args: tuple[Any, ...]
    value: int
    calldata: bytes
    operation: str


@dataclass(frozen=True)
class Receipt:
    """A transaction's run in a block."""

    tx: Tx
    block: int
    ok: bool
    reason: str


@dataclass
class Block:
    """One block: its header, receipts, raw logs and the world state after it."""

    number: int
    hash: bytes
    time_s: int
    receipts: list[Receipt]
    logs: list[dict[str, Any]]
    state: WorldState


@dataclass
class _Pending:
    tx: Tx
    mined: trio.Event = field(default_factory=trio.Event)


class SimChain:
    """Blocks, a mempool and the adjudicator's world state.

    Args:
        state: the world state at genesis (balances).
        contracts: the addresses of the simulated deployment.
        faults: what goes wrong, drawn from ``rng``.
        rng: the chain's random stream.
    """

    def __init__(
        self,
        state: WorldState,
        *,
        contracts: Contracts = SIM_CONTRACTS,
        faults: ChainFaults | None = None,
        rng: random.Random | None = None,
        genesis_time_s: int = GENESIS_TIME_S,
        automine: bool = False,
    ) -> None:
        self.contracts = contracts
        self.automine = automine  # a block for each transaction, one second apart
        self.faults = faults or ChainFaults()
        self.rng = rng or random.Random(0)
        self.codec = EventCodec()
        genesis = Block(0, keccak256(b"genesis"), genesis_time_s, [], [], state)
        self.blocks: list[Block] = [genesis]
        self.mempool: list[Tx] = []
        self.txs: dict[bytes, Tx] = {}  # every transaction ever sent, by hash
        self.receipts: dict[bytes, Receipt] = {}  # those in canonical blocks
        self._nonces: dict[str, int] = {}
        self._forks = 0
        self.reorgs = 0
        self.new_block = trio.Event()
        w3 = Web3()
        self.adjudicator: Contract = w3.eth.contract(
            address=contracts.adjudicator, abi=list(load_artifact(ADJUDICATOR).abi)
        )
        self.watched = _CachedContract(self.adjudicator)  # what the watchers read
        self.token: Contract = w3.eth.contract(
            address=contracts.token, abi=list(load_artifact(TEST_TOKEN).abi)
        )

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    @property
    def state(self) -> WorldState:
        return self.head.state

    # ------------------------------------------------------------------ transactions

    def new_tx(
        self, sender: str, to: str, function: str, args: tuple[Any, ...], value: int, operation: str
    ) -> Tx:
        """A transaction of ``sender``'s next nonce (not sent yet)."""
        contract = self.adjudicator if to == self.contracts.adjudicator else self.token
        calldata = _calldata(contract, function, args)
        nonce = self._nonces.get(sender, 0)
        self._nonces[sender] = nonce + 1
        return self._signed(Tx(b"", sender, nonce, to, function, args, value, calldata, operation))

    def _signed(self, tx: Tx, attempt: int = 0) -> Tx:
        body = abi_encode(
            ["address", "uint256", "bytes", "uint256", "uint256"],
            [tx.sender, tx.nonce, tx.calldata, tx.value, attempt],
        )
        tx.hash = keccak256(body)
        return tx

    def submit(self, tx: Tx) -> None:
        """Check ``tx`` against the newest block, as gas estimation does, and queue it.

        Raises:
            ChainError: it would revert (with the reason), or the sender cannot pay.
        """
        if self.state.balance(NATIVE, tx.sender) < tx.value:
            raise ChainError(f"{tx.operation}: insufficient funds for value plus gas")
        try:
            self._execute(self.state, tx, self.head.time_s + 1)
        except Revert as revert:
            raise ChainError(
                f"{tx.operation}: reverted: {revert.reason or 'no reason given'}"
            ) from None
        self.txs[tx.hash] = tx
        self.mempool.append(tx)
        if self.automine:
            self.mine(self.head.time_s + 1)

    def resend(self, tx: Tx, attempt: int) -> Tx | None:
        """``tx`` again with a higher fee (a new hash): it replaces the pending one; None
        when the chain mined it meanwhile (the replacement is refused)."""
        if tx.hash in self.receipts:
            return None
        again = self._signed(
            Tx(
                b"",
                tx.sender,
                tx.nonce,
                tx.to,
                tx.function,
                tx.args,
                tx.value,
                tx.calldata,
                tx.operation,
            ),
            attempt,
        )
        self.mempool = [pending for pending in self.mempool if pending.hash != tx.hash]
        self.txs[again.hash] = again
        self.mempool.append(again)
        return again

    def _execute(self, state: WorldState, tx: Tx, now: int) -> tuple[WorldState, list[LogEntry]]:
        run = Execution(self.contracts, self.codec, state.copy(), now)
        if tx.value:
            run.native_send(tx.sender, self.contracts.adjudicator, tx.value)
        if tx.to == self.contracts.token:
            if tx.function == "approve":
                run.token_approve(tx.to, tx.sender, *tx.args)
            else:
                run.token_move(tx.to, tx.sender, *tx.args)
        elif tx.function == "deposit":
            run.deposit(tx.sender, tx.value, *tx.args)
        else:
            getattr(run, _METHODS[tx.function])(*tx.args)
        return run.state, run.logs

    def transaction_state(self, tx_hash: bytes) -> str:
        """ "mined", "reverted", "pending" or "unknown", as ``ChainClient`` says."""
        receipt = self.receipts.get(tx_hash)
        if receipt is not None:
            return "mined" if receipt.ok else "reverted"
        if any(tx.hash == tx_hash for tx in self.mempool):
            return "pending"
        return "unknown"

    # ------------------------------------------------------------------ blocks

    def mine(self, now_s: int, *, reorg_depth_max: int | None = None) -> Block:
        """A new block at ``now_s`` (or just after its parent) with what the mempool holds,
        perhaps after a reorg replaced the newest blocks (at most ``reorg_depth_max``,
        else the faults' bound)."""
        faults = self.faults
        deepest = faults.reorg_depth_max if reorg_depth_max is None else reorg_depth_max
        deepest = min(deepest, len(self.blocks) - 1)
        if faults.reorg and deepest > 0 and self.rng.random() < faults.reorg:
            self.reorg(self.rng.randint(1, deepest))
        taken, kept = [], []
        held: set[str] = set()  # a sender's later nonces wait behind one held back
        for tx in self.mempool:
            if tx.sender in held:
                kept.append(tx)
            elif faults.hold_back and self.rng.random() < faults.hold_back:
                held.add(tx.sender)
                kept.append(tx)
            elif faults.drop and self.rng.random() < faults.drop:
                continue  # forgotten: the sender's wait sends it again
            else:
                taken.append(tx)
        self.mempool = kept
        parent = self.head
        number, time_s = parent.number + 1, max(now_s, parent.time_s + 1)
        header = abi_encode(
            ["bytes32", "uint256", "uint256", "uint256", "bytes32[]"],
            [parent.hash, number, time_s, self._forks, [tx.hash for tx in taken]],
        )
        block = Block(number, keccak256(header), time_s, [], [], parent.state)
        for tx in taken:
            self._include(block, tx)
        self.blocks.append(block)
        self.new_block.set()
        self.new_block = trio.Event()
        return block

    def _include(self, block: Block, tx: Tx) -> None:
        if block.state.balance(NATIVE, tx.sender) < tx.value:
            return  # no longer payable: never mined
        try:
            state, entries = self._execute(block.state, tx, block.time_s)
            receipt = Receipt(tx, block.number, True, "")
            block.state = state
        except Revert as revert:
            entries, receipt = [], Receipt(tx, block.number, False, revert.reason)
        for entry in entries:
            block.logs.append(
                {
                    "address": entry.address,
                    "topics": [HexBytes(topic) for topic in entry.topics],
                    "data": HexBytes(entry.data),
                    "blockNumber": block.number,
                    "blockHash": HexBytes(block.hash),
                    "logIndex": len(block.logs),
                    "transactionIndex": len(block.receipts),
                    "transactionHash": HexBytes(tx.hash),
                    "removed": False,
                }
            )
        block.receipts.append(receipt)
        self.receipts[tx.hash] = receipt

    def reorg(self, depth: int) -> None:
        """Replace the newest ``depth`` blocks: their transactions are pending again."""
        assert 0 < depth < len(self.blocks)
        replaced = self.blocks[-depth:]
        del self.blocks[-depth:]
        self._forks += 1
        self.reorgs += 1
        returned = [receipt.tx for block in replaced for receipt in block.receipts]
        for tx in returned:
            del self.receipts[tx.hash]
        self.mempool = returned + self.mempool

    def skip_time(self, seconds: int) -> Block:
        """An empty block ``seconds`` after the newest (``evm_setNextBlockTimestamp``)."""
        pending, self.mempool = self.mempool, []
        block = self.mine(self.head.time_s + seconds)
        self.mempool = pending
        return block


_SELECTORS: dict[tuple[str, str], tuple[bytes, list[str]]] = {}


def _calldata(contract: Contract, function: str, args: tuple[Any, ...]) -> bytes:
    """The call's input, as ``contract.encode_abi`` makes it (but without web3's
    formatters, which cost milliseconds a call)."""
    key = (contract.address, function)
    if key not in _SELECTORS:
        (abi,) = [a for a in contract.abi if a.get("name") == function and a["type"] == "function"]
        _SELECTORS[key] = (function_abi_to_4byte_selector(abi), get_abi_input_types(abi))
    selector, types = _SELECTORS[key]
    return selector + abi_encode(types, list(args))


_METHODS: Final = {
    "challenge": "challenge",
    "checkpoint": "checkpoint",
    "conclude": "conclude",
    "concludeAndTransferAllAssets": "conclude_and_transfer_all_assets",
    "transferAllAssets": "transfer_all_assets",
    "transfer": "transfer",
    "reclaim": "reclaim",
}


# ---------------------------------------------------------------------- JSON-RPC reads


class _Eth:
    """The ``w3.eth`` reads ``ChainWatcher`` makes, answered from the chain's blocks."""

    def __init__(self, chain: SimChain) -> None:
        self._chain = chain

    @property
    def block_number(self) -> int:
        return self._chain.head.number

    def get_logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        first, last = int(query["fromBlock"]), int(query["toBlock"])
        address = query["address"]
        return [
            log
            for block in self._chain.blocks[first : last + 1]
            for log in block.logs
            if log["address"] == address
        ]

    def get_block(self, number: int) -> dict[str, Any]:
        return {"timestamp": self._chain.blocks[number].time_s}

    def get_transaction(self, tx_hash: HexBytes) -> dict[str, Any]:
        tx = self._chain.txs.get(bytes(tx_hash))
        if tx is None:
            raise TransactionNotFound(f"no transaction 0x{bytes(tx_hash).hex()}")
        return {"to": tx.to, "input": HexBytes(tx.calldata)}


class _Provider:
    def __init__(self, chain: SimChain) -> None:
        self._chain = chain

    def make_batch_request(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        answers: list[Any] = []
        for method, params in requests:
            if method == "eth_blockNumber":
                answers.append({"result": hex(self._chain.head.number)})
                continue
            assert method == "eth_getBlockByNumber", method
            number = int(params[0], 16)
            if number >= len(self._chain.blocks):
                answers.append({"result": None})
                continue
            block = self._chain.blocks[number]
            header = {
                "number": hex(number),
                "hash": "0x" + block.hash.hex(),
                "timestamp": hex(block.time_s),
            }
            answers.append({"result": header})
        return answers


class _Web3:
    def __init__(self, chain: SimChain) -> None:
        self.eth = _Eth(chain)
        self.provider = _Provider(chain)


class _CachedEvent:
    """An event's ``process_log``, remembered per log: every node's watcher decodes the
    same logs of the one simulated chain."""

    def __init__(self, event: Any, cache: dict[tuple[bytes, int], Any]) -> None:
        self._event = event
        self._cache = cache

    def process_log(self, log: dict[str, Any]) -> Any:
        key = (bytes(log["blockHash"]), int(log["logIndex"]))
        if key not in self._cache:
            self._cache[key] = self._event.process_log(log)
        return self._cache[key]


class _CachedContract:
    """The adjudicator as the watcher reads it, with its decodings remembered."""

    def __init__(self, contract: Contract) -> None:
        self._contract = contract
        self.abi = contract.abi
        self.address = contract.address
        self._logs: dict[tuple[bytes, int], Any] = {}
        self._inputs: dict[bytes, Any] = {}
        self.events = {
            abi["name"]: (lambda e=contract.events[abi["name"]]: _CachedEvent(e(), self._logs))
            for abi in contract.abi
            if abi["type"] == "event"
        }

    def decode_function_input(self, data: Any) -> Any:
        key = bytes(HexBytes(data))
        if key not in self._inputs:
            self._inputs[key] = self._contract.decode_function_input(data)
        return self._inputs[key]


class SimClient:
    """What ``ChainWatcher`` needs of a ``ChainClient``."""

    def __init__(self, chain: SimChain) -> None:
        self.w3 = _Web3(chain)
        self._chain = chain

    def require_adjudicator(self) -> Any:
        return self._chain.watched


# ---------------------------------------------------------------------- the service


class SimChainService:
    """``node.chain.ChainService`` on a ``SimChain``, for one sending account.

    Each method sends its transaction at once (a revert found by the dry run is a
    ``ChainError`` before anything is sent, as gas estimation makes it), reports it to
    ``on_submitted``, and waits for a block to hold it; a transaction the mempool
    dropped is sent again after ``RESEND_AFTER_S`` (reported again), at most
    ``RESENDS_MAX`` times.
    """

    def __init__(
        self, chain: SimChain, address: str, *, poll_interval_s: float = POLL_INTERVAL_S
    ) -> None:
        self.chain = chain
        self._address = Web3.to_checksum_address(address)
        self.client = SimClient(chain)
        self.poll_interval_s = poll_interval_s

    @property
    def address(self) -> str:
        return self._address

    async def _run(
        self,
        operation: str,
        function: str,
        args: tuple[Any, ...],
        *,
        to: str | None = None,
        value: int = 0,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        await trio.lowlevel.checkpoint()
        chain = self.chain
        tx = chain.new_tx(
            self._address, to or chain.contracts.adjudicator, function, args, value, operation
        )
        chain.submit(tx)
        sent = [tx]
        if on_submitted is not None:
            await on_submitted(Submitted(operation, tx.hash, tx.nonce))
        receipt = await self._wait(sent, on_submitted)
        if not receipt.ok:
            reason = f" ({receipt.reason})" if receipt.reason else ""
            raise ChainError(
                f"{operation}: transaction 0x{receipt.tx.hash.hex()} reverted in block"
                f" {receipt.block}{reason}"
            )
        return TxResult(operation, receipt.tx.hash, receipt.tx.nonce, receipt.block, 0)

    async def _wait(self, sent: list[Tx], on_submitted: OnSubmitted | None) -> Receipt:
        chain = self.chain
        for attempt in range(1, RESENDS_MAX + 2):
            with trio.move_on_after(RESEND_AFTER_S):
                while True:
                    for tx in reversed(sent):
                        receipt = chain.receipts.get(tx.hash)
                        if receipt is not None:
                            return receipt
                    await chain.new_block.wait()
            if attempt > RESENDS_MAX:
                break
            if all(chain.transaction_state(tx.hash) == "unknown" for tx in sent):
                again = chain.resend(sent[-1], attempt)
                if again is not None:
                    sent.append(again)
                    if on_submitted is not None:
                        await on_submitted(Submitted(again.operation, again.hash, again.nonce))
        hashes = ", ".join(f"0x{tx.hash.hex()}" for tx in sent)
        raise ChainError(f"{sent[0].operation}: no receipt in time: {hashes} not mined")

    # ------------------------------------------------------------------ watching

    async def run(
        self,
        deliver: Deliver,
        *,
        from_block: int = 0,
        after: tuple[int, int] | None = None,
        confirmations: int = 0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """``ChainService.run``: the node's ``ChainWatcher`` polls, here in the trio thread."""
        watcher = ChainWatcher(
            self.client,  # type: ignore[arg-type]
            from_block=from_block,
            confirmations=confirmations,
            after=after,
        )
        task_status.started()
        while True:
            batch = watcher.poll()
            for event in batch.events:
                await deliver(event)
            if batch.caught_up:
                await trio.sleep(self.poll_interval_s)

    # ------------------------------------------------------------------ reads

    async def holdings(self, asset: str, channel: bytes) -> int:
        await trio.lowlevel.checkpoint()
        return self.chain.state.held(Web3.to_checksum_address(asset), channel)

    async def status(self, channel: bytes) -> ChannelStatus:
        await trio.lowlevel.checkpoint()
        return ChannelStatus(*unpack_status(self.chain.state.status.get(channel, bytes(32))))

    async def transaction_state(self, tx_hash: bytes) -> str:
        await trio.lowlevel.checkpoint()
        return self.chain.transaction_state(tx_hash)

    async def block_number(self) -> int:
        await trio.lowlevel.checkpoint()
        return self.chain.head.number

    async def state_is_supported(
        self, signed: SignedState, proof: Sequence[SignedState] = ()
    ) -> tuple[bool, str]:
        await trio.lowlevel.checkpoint()
        run = Execution(self.chain.contracts, self.chain.codec, self.chain.state.copy(), 0)
        fixed = fixed_part_tuple(signed.state)
        try:
            run.require_supported(
                fixed,
                channel_id(signed.state.fixed),
                [signed_variable_part(p) for p in proof],
                signed_variable_part(signed),
            )
        except Revert as revert:
            return False, revert.reason
        return True, ""

    # ------------------------------------------------------------------ transactions

    async def deposit(
        self,
        asset: str,
        channel: bytes,
        expected_held: int,
        amount: int,
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        token = Web3.to_checksum_address(asset)
        value = amount
        if token != NATIVE:
            value = 0
            spender = self.chain.contracts.adjudicator
            allowed = self.chain.state.allowances.get((token, self._address, spender), 0)
            if allowed < amount:
                await self._run(
                    "approve", "approve", (spender, amount), to=token, on_submitted=on_submitted
                )
        args = (token, channel, expected_held, amount)
        return await self._run("deposit", "deposit", args, value=value, on_submitted=on_submitted)

    async def conclude_and_transfer_all_assets(
        self, final: SignedState, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        _require_final(final)
        args = (fixed_part_tuple(final.state), signed_variable_part(final))
        return await self._run(
            "concludeAndTransferAllAssets",
            "concludeAndTransferAllAssets",
            args,
            on_submitted=on_submitted,
        )

    async def conclude(
        self, final: SignedState, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        _require_final(final)
        args = (fixed_part_tuple(final.state), signed_variable_part(final))
        return await self._run("conclude", "conclude", args, on_submitted=on_submitted)

    async def challenge(
        self,
        candidate: SignedState,
        challenger_signature: bytes,
        proof: Sequence[SignedState] = (),
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        args = (
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
            signature_tuple(challenger_signature),
        )
        return await self._run("challenge", "challenge", args, on_submitted=on_submitted)

    async def checkpoint(
        self,
        candidate: SignedState,
        proof: Sequence[SignedState] = (),
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        args = (
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
        )
        return await self._run("checkpoint", "checkpoint", args, on_submitted=on_submitted)

    async def transfer_all_assets(
        self,
        finalized: State,
        *,
        by_conclude: bool = False,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        recorded = bytes(32) if by_conclude else state_hash(finalized)
        args = (channel_id(finalized.fixed), outcome_tuple(finalized.outcome), recorded)
        return await self._run(
            "transferAllAssets", "transferAllAssets", args, on_submitted=on_submitted
        )

    async def reclaim(
        self, request: ReclaimRequest, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        return await self._run(
            "reclaim", "reclaim", (request.as_tuple(),), on_submitted=on_submitted
        )

    async def transfer(
        self,
        asset_index: int,
        channel: bytes,
        outcome: bytes,
        state_hash_: bytes,
        indices: Sequence[int] = (),
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        args = (asset_index, channel, outcome, state_hash_, list(indices))
        return await self._run("transfer", "transfer", args, on_submitted=on_submitted)


def _require_final(final: SignedState) -> None:
    if not final.state.is_final:
        raise ChainError("conclude: the state is not final (is_final is false)")
