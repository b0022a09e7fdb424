"""Adjudicator events as ``log_pb2.ChainEvent``, delivered once confirmed.

The watcher polls: it reads logs only from blocks at least ``confirmations``
deep, so an event a reorg removes within that depth is never delivered. After
each batch it delivers a ``BlockProcessed`` event for the last block read;
restarting with ``from_block`` = that number + 1 back-fills whatever was missed
in between. Events come in chain order and are deduplicated by
``(block_number, log_index)``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
import trio
from eth_abi.abi import decode as abi_decode
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import Web3Exception

from node.chain._abi import EXIT_ABI, exit_proto, signed_state_proto
from node.chain._client import ChainClient, chain_error
from node.core import constants
from node.core.errors import ChainError, InvalidValueError
from node.proto import log_pb2

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.chain.watcher")
Deliver = Callable[[log_pb2.ChainEvent], Awaitable[None]]
# BlockProcessed sorts after every log of its block.
BLOCK_PROCESSED_LOG_INDEX = 2**32 - 1
_UINT256_BYTES = 32


@dataclass(frozen=True)
class Batch:
    """What one poll found.

    Attributes:
        events: decoded events, in chain order, BlockProcessed last.
        last_block: the last block read (None: no new confirmed block).
        caught_up: whether the last block read is the newest confirmed one.
    """

    events: tuple[log_pb2.ChainEvent, ...]
    last_block: int | None
    caught_up: bool


def _uint256(value: int) -> bytes:
    return int(value).to_bytes(_UINT256_BYTES, "big")


class ChainWatcher:
    """Turns the adjudicator's logs into confirmed ``ChainEvent`` records."""

    def __init__(
        self,
        client: ChainClient,
        *,
        from_block: int = 0,
        confirmations: int = constants.chain_confirmations_default,
        poll_interval_ms: int = constants.chain_poll_interval_ms,
        blocks_per_query: int = constants.chain_log_query_blocks_max,
        after: tuple[int, int] | None = None,
    ) -> None:
        """Prepares a watcher; nothing is read until ``poll`` or ``run``.

        Args:
            client: a client that knows the adjudicator's address.
            from_block: first block to read (the last processed block + 1 on restart).
            confirmations: blocks that must follow a block before it is read.
            poll_interval_ms: pause between polls when caught up.
            blocks_per_query: widest block range of one eth_getLogs.
            after: ``(block_number, log_index)`` of the last event already
                handled; it and earlier events are skipped.
        """
        if from_block < 0 or confirmations < 0 or poll_interval_ms < 0 or blocks_per_query < 1:
            raise InvalidValueError(
                "watcher", "from_block, confirmations, poll_interval_ms must be >= 0"
            )
        self.client = client
        self.contract: Contract = client.require_adjudicator()
        self.next_block = from_block
        self.confirmations = confirmations
        self.poll_interval_ms = poll_interval_ms
        self.blocks_per_query = blocks_per_query
        self._last_key: tuple[int, int] = after if after is not None else (-1, -1)
        self._last_hash: tuple[int, bytes] | None = None
        self.unreachable_polls = 0
        self._events = {
            event_abi_to_log_topic(abi): self.contract.events[abi["name"]]()
            for abi in self.contract.abi
            if abi["type"] == "event"
        }

    async def run(
        self,
        deliver: Deliver,
        *,
        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Polls forever, handing each confirmed event to ``deliver`` in order.

        ``deliver`` may be a trio memory channel's ``send``. While the RPC
        endpoint cannot be reached the watcher keeps retrying, backing off up to
        ``chain_retry_interval_ms_max``; nothing is skipped meanwhile.

        Raises:
            ChainError: the chain answered with an error, or was reorganised
                deeper than the confirmations.
        """
        task_status.started()
        failures = 0
        while True:
            try:
                batch = await trio.to_thread.run_sync(self._poll)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                failures += 1
                self.unreachable_polls += 1
                retry_ms = min(
                    self.poll_interval_ms * 2**failures, constants.chain_retry_interval_ms_max
                )
                logger.warning("chain unreachable (%s); retrying in %d ms", error, retry_ms)
                await trio.sleep(retry_ms / 1000)
                continue
            except (Web3Exception, requests.exceptions.RequestException) as error:
                raise chain_error("watch adjudicator events", error) from error
            failures = 0
            for event in batch.events:
                await deliver(event)
            if batch.caught_up:
                await trio.sleep(self.poll_interval_ms / 1000)

    def poll(self) -> Batch:
        """Reads the next range of confirmed blocks (blocking)."""
        try:
            return self._poll()
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error("watch adjudicator events", error) from error

    def _poll(self) -> Batch:
        eth = self.client.w3.eth
        self._check_no_deep_reorg()
        safe = int(eth.block_number) - self.confirmations
        if safe < self.next_block:
            return Batch((), None, caught_up=True)
        last = min(safe, self.next_block + self.blocks_per_query - 1)
        logs = eth.get_logs(
            {"address": self.contract.address, "fromBlock": self.next_block, "toBlock": last}
        )
        times: dict[int, int] = {}
        events: list[log_pb2.ChainEvent] = []
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            key = (int(log["blockNumber"]), int(log["logIndex"]))
            if key <= self._last_key or log.get("removed"):
                continue
            event = self._decode(log, times)
            if event is not None:
                events.append(event)
                self._last_key = key
        block = eth.get_block(last)
        last_hash = bytes(block["hash"])
        processed = log_pb2.ChainEvent(
            block_number=last,
            log_index=BLOCK_PROCESSED_LOG_INDEX,
            block_time_s=int(block["timestamp"]),
            block_processed=log_pb2.BlockProcessed(block_number=last),
        )
        events.append(processed)
        self._last_hash = (last, last_hash)
        self.next_block = last + 1
        return Batch(tuple(events), last, caught_up=last == safe)

    def _check_no_deep_reorg(self) -> None:
        if self._last_hash is None:
            return
        number, expected = self._last_hash
        actual = bytes(self.client.w3.eth.get_block(number)["hash"])
        if actual != expected:
            raise ChainError(
                f"watch adjudicator events: block {number} changed after it was processed:"
                f" a reorg deeper than {self.confirmations} confirmations"
            )

    def _block_time(self, number: int, times: dict[int, int]) -> int:
        if number not in times:
            times[number] = int(self.client.w3.eth.get_block(number)["timestamp"])
        return times[number]

    def _decode(self, log: Any, times: dict[int, int]) -> log_pb2.ChainEvent | None:
        topics = log["topics"]
        if not topics or bytes(topics[0]) not in self._events:
            return None
        decoded = self._events[bytes(topics[0])].process_log(log)
        name = decoded["event"]
        args = decoded["args"]
        event = log_pb2.ChainEvent(
            block_number=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash=bytes(log["transactionHash"]),
            block_time_s=self._block_time(int(log["blockNumber"]), times),
        )
        return self._fill(event, name, args, bytes(log["transactionHash"]))

    def _fill(
        self, event: log_pb2.ChainEvent, name: str, args: Any, tx_hash: bytes
    ) -> log_pb2.ChainEvent | None:
        if name == "Deposited":
            event.deposited.CopyFrom(
                log_pb2.Deposited(
                    channel_id=bytes(args["destination"]),
                    asset=bytes.fromhex(str(args["asset"])[2:]),
                    destination_holdings=_uint256(args["destinationHoldings"]),
                )
            )
        elif name == "AllocationUpdated":
            event.allocation_updated.CopyFrom(
                log_pb2.AllocationUpdated(
                    channel_id=bytes(args["channelId"]),
                    asset_index=int(args["assetIndex"]),
                    asset=self._asset_of(tx_hash, int(args["assetIndex"])),
                    initial_holdings=_uint256(args["initialHoldings"]),
                    final_holdings=_uint256(args["finalHoldings"]),
                )
            )
        elif name == "Concluded":
            event.concluded.CopyFrom(
                log_pb2.Concluded(
                    channel_id=bytes(args["channelId"]), finalizes_at=int(args["finalizesAt"])
                )
            )
        elif name == "ChallengeRegistered":
            event.challenge_registered.CopyFrom(self._challenge(args, tx_hash))
        elif name == "ChallengeCleared":
            event.challenge_cleared.CopyFrom(
                log_pb2.ChallengeCleared(
                    channel_id=bytes(args["channelId"]),
                    new_turn_num_record=int(args["newTurnNumRecord"]),
                )
            )
        elif name == "Reclaimed":
            event.reclaimed.CopyFrom(
                log_pb2.Reclaimed(
                    channel_id=bytes(args["channelId"]), asset_index=int(args["assetIndex"])
                )
            )
        else:
            # Checkpointed: no record of its own; the turn number shows in later states.
            return None
        return event

    def _input_of(self, tx_hash: bytes) -> tuple[str, dict[str, Any]] | None:
        """The adjudicator call that ``tx_hash`` made, if it called it directly."""
        tx = self.client.w3.eth.get_transaction(HexBytes(tx_hash))
        if tx.get("to") is None or str(tx["to"]).lower() != self.contract.address.lower():
            return None
        try:
            function, inputs = self.contract.decode_function_input(tx["input"])
        except ValueError:
            return None
        return str(function.fn_name), dict(inputs)

    def _asset_of(self, tx_hash: bytes, asset_index: int) -> bytes:
        """The asset an AllocationUpdated refers to, read from its transaction's
        input (the event does not carry it); empty when the call was indirect."""
        call = self._input_of(tx_hash)
        if call is None:
            return b""
        name, inputs = call
        if name == "concludeAndTransferAllAssets":
            outcome = inputs["candidate"]["variablePart"]["outcome"]
        elif name == "transferAllAssets":
            outcome = inputs["outcome"]
        elif name == "transfer":
            (outcome,) = abi_decode([EXIT_ABI], inputs["outcomeBytes"])
            return bytes.fromhex(str(outcome[asset_index][0])[2:])
        else:
            return b""
        return exit_proto(outcome[asset_index]).asset

    def _challenge(self, args: Any, tx_hash: bytes) -> log_pb2.ChallengeRegistered:
        message = log_pb2.ChallengeRegistered(
            channel_id=bytes(args["channelId"]), finalizes_at=int(args["finalizesAt"])
        )
        call = self._input_of(tx_hash)
        if call is not None and call[0] == "challenge":
            message.candidate.CopyFrom(signed_state_proto(call[1]["fixedPart"], args["candidate"]))
        return message
