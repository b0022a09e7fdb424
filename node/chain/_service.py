"""The node's chain service: adjudicator transactions from trio.

Each method runs the blocking ``ChainClient`` in ``trio.to_thread`` and returns
once the transaction is mined (``TxResult``) or raises ``ChainError``. An
optional ``on_submitted`` callback sees each transaction as soon as it is sent
(hash and nonce), before its receipt: the engine logs it there. A transaction
not mined in time is sent again with a higher fee and the same nonce
(``ChainClient.wait``); each resend is reported too, as a new ``Submitted``, and
the result is whichever send was mined.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from web3 import Web3
from web3.contract.contract import ContractFunction

from node.chain._abi import (
    fixed_part_tuple,
    outcome_tuple,
    signature_tuple,
    signed_variable_part,
)
from node.chain._artifacts import (
    ADJUDICATOR,
    CONSENSUS_APP,
    TEST_TOKEN,
    VIRTUAL_PAYMENT_APP,
    Artifact,
    load_artifact,
)
from node.chain._client import ChainClient, ChannelStatus, Submitted, TxResult
from node.chain._watcher import ChainWatcher, Deliver
from node.core import SignedState, State, channel_id, constants, state_hash
from node.core.errors import ChainError

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from node.metrics import Metrics

NATIVE_ASSET = "0x0000000000000000000000000000000000000000"
OnSubmitted = Callable[[Submitted], Awaitable[None]]


@dataclass(frozen=True)
class Deployment:
    """Addresses of a deployed contract set.

    Attributes:
        adjudicator: the adjudicator.
        consensus_app: app of ledger channels.
        virtual_payment_app: app of virtual payment channels.
        token: an ERC20 for tests and devnets, if deployed.
    """

    adjudicator: str
    consensus_app: str
    virtual_payment_app: str
    token: str | None = None


@dataclass(frozen=True)
class ReclaimRequest:
    """Arguments of ``reclaim``: fold a finalized target channel back into the
    guarantee of a finalized source (ledger) channel.

    Attributes:
        source_channel_id: the ledger channel holding the guarantee.
        source_state_hash: state hash in its status (zero after conclude).
        source_outcome: ``abi.encode`` of its finalized outcome.
        source_asset_index: index of the guarantee's asset in that outcome.
        index_of_target_in_source: index of the guarantee allocation.
        target_state_hash: state hash in the target's status.
        target_outcome: ``abi.encode`` of the target's finalized outcome.
        target_asset_index: index of the same asset in the target outcome.
    """

    source_channel_id: bytes
    source_state_hash: bytes
    source_outcome: bytes
    source_asset_index: int
    index_of_target_in_source: int
    target_state_hash: bytes
    target_outcome: bytes
    target_asset_index: int

    def as_tuple(self) -> tuple[bytes, bytes, bytes, int, int, bytes, bytes, int]:
        """The ABI form of ``ReclaimArgs``."""
        return (
            self.source_channel_id,
            self.source_state_hash,
            self.source_outcome,
            self.source_asset_index,
            self.index_of_target_in_source,
            self.target_state_hash,
            self.target_outcome,
            self.target_asset_index,
        )


class ChainService:
    """Adjudicator transactions and reads for one chain key, callable from trio."""

    def __init__(self, client: ChainClient) -> None:
        """Wraps ``client`` (which must know the adjudicator's address for calls)."""
        self.client = client
        self.metrics: Metrics | None = None  # counts transactions and their gas, when set
        self._watcher: ChainWatcher | None = None

    @property
    def head_block(self) -> int | None:
        """The chain's latest block as the watcher last polled it (None: not yet)."""
        return None if self._watcher is None else self._watcher.head_block

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        private_key: bytes,
        adjudicator: str,
        *,
        adjudicator_artifact: Artifact | None = None,
        resend_after_ms: int = constants.chain_resend_after_ms,
        resends_max: int = constants.chain_resends_max,
    ) -> ChainService:
        """A service on ``rpc_url`` that signs with ``private_key`` (the chain key,
        which may differ from the channel key); see ``ChainClient`` for the rest."""
        client = ChainClient(
            rpc_url,
            private_key,
            adjudicator,
            adjudicator_artifact=adjudicator_artifact,
            resend_after_ms=resend_after_ms,
            resends_max=resends_max,
        )
        return cls(client)

    @property
    def address(self) -> str:
        """The address that sends and pays for transactions."""
        return self.client.address

    async def _run(
        self,
        operation: str,
        function: ContractFunction,
        *,
        value: int = 0,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        submitted = await trio.to_thread.run_sync(
            lambda: self.client.submit(operation, function, value=value)
        )
        if self.metrics is not None:
            self.metrics.transaction(operation, "submitted")
        try:
            result = await self._wait(submitted, on_submitted)
        except ChainError:
            if self.metrics is not None:
                self.metrics.transaction(operation, "failed")
            raise
        if self.metrics is not None:
            self.metrics.transaction(operation, "mined", result.gas_used)
        return result

    async def _wait(self, submitted: Submitted, on_submitted: OnSubmitted | None) -> TxResult:
        if on_submitted is None:
            return await trio.to_thread.run_sync(self.client.wait, submitted)
        await on_submitted(submitted)
        report = on_submitted

        def on_resent(resent: Submitted) -> None:
            # Called in the waiting thread: the report runs in trio, then the wait goes on.
            trio.from_thread.run(report, resent)

        return await trio.to_thread.run_sync(
            lambda: self.client.wait(submitted, on_resent=on_resent)
        )

    async def run(
        self,
        deliver: Deliver,
        *,
        from_block: int = 0,
        after: tuple[int, int] | None = None,
        confirmations: int = constants.chain_confirmations_default,
        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watches the adjudicator: see ``ChainWatcher.run``.

        Args:
            deliver: receives each confirmed ``ChainEvent`` (a memory channel's ``send``).
            from_block: the last ``BlockProcessed`` block + 1 when restarting.
            after: ``(block_number, log_index)`` of the last event already handled.
            confirmations: blocks that must follow an event's block before delivery.
            task_status: started once the watcher is set up.
        """
        watcher = ChainWatcher(
            self.client, from_block=from_block, confirmations=confirmations, after=after
        )
        self._watcher = watcher
        await watcher.run(deliver, task_status=task_status)

    # ------------------------------------------------------------------ reads

    async def holdings(self, asset: str, channel: bytes) -> int:
        """What the adjudicator holds of ``asset`` for ``channel``."""
        return await trio.to_thread.run_sync(self.client.holdings, asset, channel)

    async def status(self, channel: bytes) -> ChannelStatus:
        """The adjudicator's status record of ``channel``."""
        return await trio.to_thread.run_sync(self.client.status, channel)

    async def transaction_state(self, tx_hash: bytes) -> str:
        """``ChainClient.transaction_state``, off the event loop."""
        return await trio.to_thread.run_sync(self.client.transaction_state, tx_hash)

    async def block_number(self) -> int:
        """The latest block number."""
        return await trio.to_thread.run_sync(self.client.block_number)

    async def state_is_supported(
        self, signed: SignedState, proof: Sequence[SignedState] = ()
    ) -> tuple[bool, str]:
        """What the channel's app says of ``signed`` with ``proof`` (a dry run)."""
        function = self.client.require_adjudicator().functions.stateIsSupported(
            fixed_part_tuple(signed.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(signed),
        )
        supported, reason = await trio.to_thread.run_sync(
            self.client.call, "stateIsSupported", function
        )
        return bool(supported), str(reason)

    # ------------------------------------------------------------------ funding

    async def deposit(
        self,
        asset: str,
        channel: bytes,
        expected_held: int,
        amount: int,
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        """Deposits ``amount`` of ``asset`` into ``channel``, which must hold
        ``expected_held`` now. For an ERC20 the adjudicator is first approved
        (that transaction is awaited) unless the allowance already covers it."""
        adjudicator = self.client.require_adjudicator()
        if int(asset, 16) != 0:
            await self._approve(asset, amount, on_submitted)
            value = 0
        else:
            value = amount
        function = adjudicator.functions.deposit(
            Web3.to_checksum_address(asset), channel, expected_held, amount
        )
        return await self._run("deposit", function, value=value, on_submitted=on_submitted)

    async def _approve(self, token: str, amount: int, on_submitted: OnSubmitted | None) -> None:
        erc20 = self.client.contract(load_artifact(TEST_TOKEN), token)
        spender = self.client.require_adjudicator().address
        allowance = await trio.to_thread.run_sync(
            self.client.call, "allowance", erc20.functions.allowance(self.address, spender)
        )
        if int(allowance) < amount:
            approve = erc20.functions.approve(spender, amount)
            await self._run("approve", approve, on_submitted=on_submitted)

    # ------------------------------------------------------------------ exits

    async def conclude_and_transfer_all_assets(
        self, final: SignedState, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        """Concludes the channel with a final state everyone signed and pays out all assets."""
        _require_final(final)
        function = self.client.require_adjudicator().functions.concludeAndTransferAllAssets(
            fixed_part_tuple(final.state), signed_variable_part(final)
        )
        return await self._run("concludeAndTransferAllAssets", function, on_submitted=on_submitted)

    async def conclude(
        self, final: SignedState, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        """Concludes the channel with a final state everyone signed (no payout)."""
        _require_final(final)
        function = self.client.require_adjudicator().functions.conclude(
            fixed_part_tuple(final.state), signed_variable_part(final)
        )
        return await self._run("conclude", function, on_submitted=on_submitted)

    async def challenge(
        self,
        candidate: SignedState,
        challenger_signature: bytes,
        proof: Sequence[SignedState] = (),
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        """Registers a challenge with ``candidate`` (supported with ``proof``).

        Args:
            candidate: the state to finalize with unless a newer one is checkpointed.
            challenger_signature: a participant's ``sign_challenge`` of the candidate.
            proof: states that, with the candidate, make it supported by the app.
            on_submitted: called once the transaction is sent.
        """
        function = self.client.require_adjudicator().functions.challenge(
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
            signature_tuple(challenger_signature),
        )
        return await self._run("challenge", function, on_submitted=on_submitted)

    async def checkpoint(
        self,
        candidate: SignedState,
        proof: Sequence[SignedState] = (),
        *,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        """Records a newer supported state; clears a running challenge."""
        function = self.client.require_adjudicator().functions.checkpoint(
            fixed_part_tuple(candidate.state),
            [signed_variable_part(p) for p in proof],
            signed_variable_part(candidate),
        )
        return await self._run("checkpoint", function, on_submitted=on_submitted)

    async def transfer_all_assets(
        self,
        finalized: State,
        *,
        by_conclude: bool = False,
        on_submitted: OnSubmitted | None = None,
    ) -> TxResult:
        """Pays out a finalized channel whose recorded outcome is ``finalized.outcome``.

        Args:
            finalized: after a challenge, the challenged state (call once the
                challenge duration has passed); after ``conclude``, the final state.
            by_conclude: the channel was finalized by ``conclude``, which records
                a zero state hash instead of the state's.
            on_submitted: called once the transaction is sent.
        """
        recorded_hash = bytes(32) if by_conclude else state_hash(finalized)
        function = self.client.require_adjudicator().functions.transferAllAssets(
            channel_id(finalized.fixed), outcome_tuple(finalized.outcome), recorded_hash
        )
        return await self._run("transferAllAssets", function, on_submitted=on_submitted)

    async def reclaim(
        self, request: ReclaimRequest, *, on_submitted: OnSubmitted | None = None
    ) -> TxResult:
        """Folds a finalized target channel back into its guarantee in a ledger channel."""
        function = self.client.require_adjudicator().functions.reclaim(request.as_tuple())
        return await self._run("reclaim", function, on_submitted=on_submitted)

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
        """Pays out the allocations at ``indices`` (all when empty) of one asset
        of a finalized channel whose encoded outcome is ``outcome``."""
        function = self.client.require_adjudicator().functions.transfer(
            asset_index, channel, outcome, state_hash_, list(indices)
        )
        return await self._run("transfer", function, on_submitted=on_submitted)


def _require_final(final: SignedState) -> None:
    if not final.state.is_final:
        raise ChainError("conclude: the state is not final (is_final is false)")


def deploy_contracts(
    client: ChainClient,
    *,
    token_supply: int | None = None,
    artifacts: dict[str, Artifact] | None = None,
) -> Deployment:
    """Deploys the adjudicator and both apps (and a test token when
    ``token_supply`` is given), one transaction after the other.

    Args:
        client: the deploying account.
        token_supply: initial supply of a TestToken minted to the deployer.
        artifacts: replacements by name (the reference contracts, in tests).
    """
    chosen = {
        name: load_artifact(name) for name in (ADJUDICATOR, CONSENSUS_APP, VIRTUAL_PAYMENT_APP)
    }
    chosen.update(artifacts or {})
    addresses: dict[str, Any] = {}
    for name, artifact in chosen.items():
        addresses[name] = client.deploy(artifact).contract_address
    token = None
    if token_supply is not None:
        token = client.deploy(load_artifact(TEST_TOKEN), "Test Token", "TST", token_supply)
    client.use_adjudicator(addresses[ADJUDICATOR])
    return Deployment(
        adjudicator=addresses[ADJUDICATOR],
        consensus_app=addresses[CONSENSUS_APP],
        virtual_payment_app=addresses[VIRTUAL_PAYMENT_APP],
        token=token.contract_address if token else None,
    )
