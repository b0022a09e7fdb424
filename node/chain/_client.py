"""A blocking JSON-RPC client for one chain key: transactions, receipts, nonces, errors.

web3.py's async client runs only under asyncio, so the node calls this sync
client from ``trio.to_thread`` (``node.chain.ChainService``). Every
transaction is signed locally, waits for its receipt, and every failure comes
out as a ``ChainError`` that says what was attempted and why it failed.

A transaction that is not mined in time is sent again with the same nonce and
fees raised by at least 12.5 % (``bump_fees``), a bounded number of times;
whichever of its sends is mined is the result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
)
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import TxParams

from node.chain._artifacts import ADJUDICATOR, Artifact, load_artifact
from node.core import constants
from node.core.errors import ChainError, InvalidValueError

logger = logging.getLogger("node.chain.client")
# Headroom over eth_estimateGas: holdings can change between estimate and inclusion.
_GAS_MARGIN_NUMERATOR = 6
_GAS_MARGIN_DENOMINATOR = 5
_EIP1559_FEES = ("maxFeePerGas", "maxPriorityFeePerGas")
_LEGACY_FEES = ("gasPrice",)
OnResent = Callable[["Submitted"], None]


@dataclass(frozen=True)
class Submitted:
    """A transaction sent to the node, not yet mined.

    Attributes:
        operation: what it does ("deposit", "challenge", ...).
        tx_hash: 32-byte transaction hash.
        nonce: the sender's nonce it used.
    """

    operation: str
    tx_hash: bytes
    nonce: int


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction.

    Attributes:
        operation: what it did.
        tx_hash: 32-byte transaction hash.
        nonce: the sender's nonce it used.
        block_number: the block it was mined in.
        gas_used: gas it consumed.
        contract_address: the created contract, for a deployment.
    """

    operation: str
    tx_hash: bytes
    nonce: int
    block_number: int
    gas_used: int
    contract_address: str | None = None


@dataclass(frozen=True)
class ChannelStatus:
    """The adjudicator's record of a channel.

    Attributes:
        turn_num_record: highest turn number registered on chain.
        finalizes_at: unix time the channel finalizes (0: open, no challenge).
        fingerprint: low 160 bits of keccak256(stateHash, outcomeHash).
    """

    turn_num_record: int
    finalizes_at: int
    fingerprint: int


def chain_error(operation: str, error: Exception) -> ChainError:
    """A ChainError naming ``operation`` and the chain's reason for ``error``."""
    text = str(error)
    if isinstance(error, ContractLogicError):
        message = error.message or text
        reason = message.removeprefix("execution reverted").removeprefix(":").strip()
        return ChainError(f"{operation}: reverted: {reason or 'no reason given'}")
    if "insufficient funds" in text.lower():
        return ChainError(
            f"{operation}: insufficient funds for value plus gas ({_rpc_message(error)})"
        )
    if isinstance(error, requests.exceptions.RequestException):
        return ChainError(f"{operation}: chain not reachable: {text}")
    if isinstance(error, TimeExhausted):
        return ChainError(f"{operation}: no receipt in time: {text}")
    return ChainError(f"{operation}: {type(error).__name__}: {text}")


def _rpc_message(error: Exception) -> str:
    """The node's own error message when ``error`` carries a JSON-RPC error object."""
    response = getattr(error, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message", error))
    return str(error)


def bump_fees(tx: Mapping[str, Any]) -> dict[str, Any]:
    """``tx`` with its fee fields raised for a replacement: ``maxFeePerGas`` and
    ``maxPriorityFeePerGas`` (EIP-1559), else ``gasPrice``, each by at least
    ``chain_fee_bump_numerator / chain_fee_bump_denominator`` (12.5 %) and 1 wei.

    Raises:
        InvalidValueError: ``tx`` has no fee fields.
    """
    fields = _EIP1559_FEES if "maxFeePerGas" in tx else _LEGACY_FEES
    if not all(field in tx for field in fields):
        raise InvalidValueError("tx", f"has no fee fields ({', '.join(fields)})")
    numerator = constants.chain_fee_bump_numerator
    denominator = constants.chain_fee_bump_denominator
    bumped = dict(tx)
    for field in fields:
        old = int(tx[field])
        assert old >= 0
        raise_by = (old * (numerator - denominator) + denominator - 1) // denominator
        bumped[field] = old + max(1, raise_by)
        assert bumped[field] * denominator >= old * numerator
    if fields == _EIP1559_FEES:
        assert bumped["maxFeePerGas"] >= bumped["maxPriorityFeePerGas"] or (
            tx["maxFeePerGas"] < tx["maxPriorityFeePerGas"]
        )
    return bumped


class ChainClient:
    """Blocking access to one chain with one sending key.

    Submissions are serialised by a lock so that concurrent callers get
    consecutive nonces; the nonce is re-read from the chain after any failed send.
    The client remembers what it sent (up to ``chain_pending_transactions_max``
    transactions not yet waited for) so that ``wait`` can send it again.
    """

    def __init__(
        self,
        rpc_url: str,
        private_key: bytes,
        adjudicator: str | None = None,
        *,
        adjudicator_artifact: Artifact | None = None,
        receipt_timeout_ms: int = constants.chain_receipt_timeout_ms,
        resend_after_ms: int = constants.chain_resend_after_ms,
        resends_max: int = constants.chain_resends_max,
    ) -> None:
        """Connects lazily to ``rpc_url``; nothing is sent until a call.

        Args:
            rpc_url: HTTP JSON-RPC endpoint.
            private_key: the 32-byte key that signs and pays for transactions.
            adjudicator: address of the adjudicator, if deployed.
            adjudicator_artifact: ABI to use for it (default: ours).
            receipt_timeout_ms: how long to wait for a receipt after the latest send.
            resend_after_ms: a transaction none of whose sends is mined this long
                after the latest is sent again with higher fees (only when shorter
                than ``receipt_timeout_ms``).
            resends_max: how many times one transaction may be sent again.

        Raises:
            InvalidValueError: a time is not positive, or ``resends_max`` is negative.
        """
        if receipt_timeout_ms <= 0 or resend_after_ms <= 0 or resends_max < 0:
            raise InvalidValueError(
                "chain client",
                "receipt_timeout_ms and resend_after_ms must be > 0, resends_max >= 0",
            )
        timeout_s = constants.chain_rpc_timeout_ms / 1000
        self.rpc_url = rpc_url
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        # Proof-of-authority chains put more than 32 bytes in extraData, which
        # web3 refuses by default; this is a no-op on other chains.
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.account: LocalAccount = Account.from_key(private_key)
        self._artifact = adjudicator_artifact or load_artifact(ADJUDICATOR)
        self._receipt_timeout_s = receipt_timeout_ms / 1000
        self._resend_after_s = resend_after_ms / 1000
        self.resends_max = resends_max
        self._lock = threading.Lock()
        self._nonce: int | None = None
        # What was signed, by transaction hash, until waited for: a resend's template.
        self._sent: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
        self.adjudicator: Contract | None = None
        if adjudicator is not None:
            self.use_adjudicator(adjudicator)

    @property
    def address(self) -> str:
        """The sending account's checksummed address."""
        return str(self.account.address)

    def use_adjudicator(self, address: str) -> Contract:
        """Points the client at the adjudicator deployed at ``address``."""
        self.adjudicator = self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(self._artifact.abi)
        )
        return self.adjudicator

    def require_adjudicator(self) -> Contract:
        """The adjudicator contract; raises ChainError if none is set."""
        if self.adjudicator is None:
            raise ChainError("adjudicator: no address configured")
        return self.adjudicator

    def contract(self, artifact: Artifact, address: str) -> Contract:
        """A handle on another deployed contract."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=list(artifact.abi)
        )

    # ------------------------------------------------------------------ reads

    def call(self, operation: str, function: ContractFunction) -> Any:
        """Runs a view function; errors become ChainError."""
        try:
            return function.call()
        except (Web3Exception, requests.exceptions.RequestException, ValueError) as error:
            raise chain_error(operation, error) from error

    def rpc(self, operation: str, method: str, *params: Any) -> Any:
        """A raw JSON-RPC request (``evm_increaseTime``, ``anvil_mine``...)."""
        try:
            response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error(operation, error) from error
        if "error" in response:
            raise ChainError(f"{operation}: {method} failed: {response['error']}")
        return response.get("result")

    def holdings(self, asset: str, channel_id: bytes) -> int:
        """What the adjudicator holds of ``asset`` for ``channel_id``."""
        function = self.require_adjudicator().functions.holdings(
            Web3.to_checksum_address(asset), channel_id
        )
        return int(self.call("holdings", function))

    def status(self, channel_id: bytes) -> ChannelStatus:
        """The adjudicator's status record of ``channel_id``."""
        unpack = self.require_adjudicator().functions.unpackStatus(channel_id)
        turn_num_record, finalizes_at, fingerprint = self.call("unpackStatus", unpack)
        return ChannelStatus(int(turn_num_record), int(finalizes_at), int(fingerprint))

    def balance(self, address: str) -> int:
        """Native-coin balance of ``address`` in wei."""
        try:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error("balance", error) from error

    def transaction_state(self, tx_hash: bytes) -> str:
        """Where a transaction sent earlier stands: "mined", "reverted", "pending" (the
        node knows it, unmined) or "unknown" (dropped, or never seen by this node).

        Raises:
            ChainError: the node could not be asked.
        """
        try:
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                receipt = None
            if receipt is not None and receipt.get("blockNumber") is not None:
                return "mined" if receipt["status"] == 1 else "reverted"
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return "unknown"
            return "pending"
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error("transaction_state", error) from error

    def block_number(self) -> int:
        """The latest block number."""
        try:
            return int(self.w3.eth.block_number)
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error("block_number", error) from error

    # ------------------------------------------------------------------ writes

    def submit(
        self,
        operation: str,
        function: ContractFunction | None,
        *,
        value: int = 0,
        deploy: tuple[Artifact, tuple[Any, ...]] | None = None,
    ) -> Submitted:
        """Signs and sends a call of ``function`` (or a deployment), without waiting.

        Raises:
            ChainError: the call would revert (with the reason), the account
                cannot pay, or the node is unreachable.
        """
        with self._lock:
            for attempt in range(2):
                try:
                    nonce, tx_hash = self._send(function, value, deploy)
                    break
                except (Web3Exception, requests.exceptions.RequestException, ValueError) as error:
                    # Another sender with this key moved the nonce on: re-read it once.
                    self._nonce = None
                    if attempt == 0 and "nonce too low" in str(error).lower():
                        continue
                    failure = chain_error(operation, error)
                    if "insufficient funds" in str(failure):
                        failure = ChainError(f"{failure}; account {self.address}{self._funds()}")
                    raise failure from error
            self._nonce = nonce + 1
        return Submitted(operation=operation, tx_hash=bytes(tx_hash), nonce=nonce)

    def _send(
        self,
        function: ContractFunction | None,
        value: int,
        deploy: tuple[Artifact, tuple[Any, ...]] | None,
    ) -> tuple[int, bytes]:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        nonce = self._nonce
        params: dict[str, Any] = {"from": self.address, "nonce": nonce, "value": value}
        if deploy is not None:
            artifact, args = deploy
            factory = self.w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
            tx = factory.constructor(*args).build_transaction(cast(TxParams, params))
        else:
            assert function is not None, "submit needs a function or a deployment"
            tx = function.build_transaction(cast(TxParams, params))
        tx["gas"] = tx["gas"] * _GAS_MARGIN_NUMERATOR // _GAS_MARGIN_DENOMINATOR
        return nonce, self._sign_and_send(dict(tx))

    def _sign_and_send(self, tx: dict[str, Any]) -> bytes:
        """Signs and sends ``tx`` and remembers it by hash (the lock is held)."""
        assert self._lock.locked()
        signed = self.account.sign_transaction(tx)
        tx_hash = bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        assert tx_hash == bytes(signed.hash)
        self._sent[tx_hash] = tx
        while len(self._sent) > constants.chain_pending_transactions_max:
            self._sent.popitem(last=False)
        return tx_hash

    def resubmit(self, submitted: Submitted) -> Submitted:
        """Sends ``submitted`` again with the same nonce and higher fees (``bump_fees``),
        to replace it in the nodes' pools; the result has the new transaction's hash.

        Raises:
            ChainError: this client does not remember sending it (sent by another
                client, or already waited for), or the node refused the replacement
                (for instance because a transaction with that nonce was mined).
        """
        operation = submitted.operation
        with self._lock:
            tx = self._sent.get(submitted.tx_hash)
            if tx is None:
                raise ChainError(
                    f"{operation}: cannot send 0x{submitted.tx_hash.hex()} again:"
                    " this client does not remember it"
                )
            assert int(tx["nonce"]) == submitted.nonce
            try:
                tx_hash = self._sign_and_send(bump_fees(tx))
            except (Web3Exception, requests.exceptions.RequestException, ValueError) as error:
                raise chain_error(f"{operation} (resend)", error) from error
        return Submitted(operation=operation, tx_hash=tx_hash, nonce=submitted.nonce)

    def _funds(self) -> str:
        """ ", balance N wei" when the balance can be read, else empty."""
        try:
            return f", balance {self.w3.eth.get_balance(self.account.address)} wei"
        except (Web3Exception, requests.exceptions.RequestException):
            return ""

    def wait(self, submitted: Submitted, *, on_resent: OnResent | None = None) -> TxResult:
        """Waits until ``submitted``, or one of its resends, is mined.

        When none of its sends is mined ``resend_after_ms`` after the latest, the
        transaction is sent again (``resubmit``), at most ``resends_max`` times; each
        resend goes to ``on_resent`` before the wait goes on. The wait gives up
        ``receipt_timeout_ms`` after the latest send.

        Returns:
            The result of whichever send was mined.

        Raises:
            ChainError: it reverted when mined, or no receipt came in time.
        """
        sent = [submitted]
        try:
            receipt, mined = self._wait_resending(sent, on_resent)
        finally:
            with self._lock:
                for each in sent:
                    self._sent.pop(each.tx_hash, None)
        operation = submitted.operation
        if receipt["status"] != 1:
            raise ChainError(
                f"{operation}: transaction 0x{mined.tx_hash.hex()} reverted in block"
                f" {receipt['blockNumber']}{self._replayed_reason(mined, receipt)}"
            )
        address = receipt.get("contractAddress")
        return TxResult(
            operation=operation,
            tx_hash=mined.tx_hash,
            nonce=mined.nonce,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            contract_address=str(address) if address else None,
        )

    def _wait_resending(
        self, sent: list[Submitted], on_resent: OnResent | None
    ) -> tuple[Any, Submitted]:
        """The receipt of whichever of ``sent`` is mined, and that one; appends resends."""
        with self._lock:
            resendable = sent[0].tx_hash in self._sent
        resend_first = resendable and self._resend_after_s < self._receipt_timeout_s
        attempts = 0  # resends tried, refused ones too
        refusal = ""
        while True:
            resend = resend_first and attempts < self.resends_max
            timeout_s = self._resend_after_s if resend else self._receipt_timeout_s
            found = self._receipt_of_any(sent, timeout_s)
            if found is not None:
                return found
            if not resend:
                with self._lock:  # sends none of which was mined may leave the nonce unused
                    self._nonce = None
                hashes = ", ".join(f"0x{each.tx_hash.hex()}" for each in sent)
                raise ChainError(
                    f"{sent[0].operation}: no receipt in time: {hashes} not mined"
                    f" {self._receipt_timeout_s:g} s after the latest send{refusal}"
                )
            attempts += 1
            try:
                resent = self.resubmit(sent[-1])
            except ChainError as error:
                # Perhaps one of the sends was mined meanwhile: its receipt will tell.
                logger.warning("%s; waiting on", error)
                refusal = f"; the last resend was refused ({error})"
                continue
            sent.append(resent)
            logger.info(
                "%s: not mined in %g s; sent again as 0x%s",
                resent.operation,
                self._resend_after_s,
                resent.tx_hash.hex(),
            )
            if on_resent is not None:
                on_resent(resent)

    def _receipt_of_any(
        self, sent: Sequence[Submitted], timeout_s: float
    ) -> tuple[Any, Submitted] | None:
        """The first receipt found of any of ``sent`` within ``timeout_s`` (newest
        asked first); None when none is mined by then."""
        deadline = time.monotonic() + timeout_s
        poll_s = constants.chain_receipt_poll_interval_ms / 1000
        while True:
            for each in reversed(sent):
                try:
                    receipt = self.w3.eth.get_transaction_receipt(HexBytes(each.tx_hash))
                except TransactionNotFound:
                    continue
                except (Web3Exception, requests.exceptions.RequestException) as error:
                    raise chain_error(each.operation, error) from error
                if receipt is not None and receipt.get("blockNumber") is not None:
                    return receipt, each
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return None
            time.sleep(min(poll_s, left_s))

    def _replayed_reason(self, submitted: Submitted, receipt: Any) -> str:
        """Why a mined transaction reverted, found by replaying it on the state
        after its block (a receipt has no reason); empty if the replay passes."""
        try:
            tx = self.w3.eth.get_transaction(HexBytes(submitted.tx_hash))
            self.w3.eth.call(
                {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]},
                block_identifier=int(receipt["blockNumber"]),
            )
        except ContractLogicError as error:
            return f" ({chain_error('replay', error).args[0].removeprefix('replay: ')})"
        except (Web3Exception, requests.exceptions.RequestException):
            return ""
        return ""

    def transact(self, operation: str, function: ContractFunction, *, value: int = 0) -> TxResult:
        """submit, then wait."""
        return self.wait(self.submit(operation, function, value=value))

    def deploy(self, artifact: Artifact, *args: Any) -> TxResult:
        """Deploys ``artifact`` with constructor ``args``; the result has its address."""
        result = self.wait(self.submit(f"deploy {artifact.name}", None, deploy=(artifact, args)))
        if result.contract_address is None:
            raise ChainError(f"deploy {artifact.name}: receipt has no contract address")
        return result
