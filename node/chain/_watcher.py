"""Adjudicator events as ``log_pb2.ChainEvent``, delivered once confirmed.

The watcher polls: it reads logs only from blocks at least ``confirmations``
deep, so an event a reorg removes within that depth is never delivered. After
each batch it delivers a ``BlockProcessed`` event for the last block read;
restarting with ``from_block`` = that number + 1 back-fills whatever was missed
in between. Events come in chain order and are deduplicated by
``(block_number, log_index)``.

Reorgs deeper than the confirmations are survived: the watcher keeps the hashes
of the last ``reorg_window_blocks`` blocks it processed (at first, from the block
before ``from_block`` on, as that block was when first read), and each poll first
checks that the last of them is still canonical. If it is not, the watcher finds
the fork point (the highest remembered block whose hash still matches), delivers
``BlocksReverted(first_block)`` for the first replaced block before anything
else, and reads the canonical blocks again from there, delivering their events
anew. A reorg that replaces every remembered block (deeper than the window, or
than the block before ``from_block``) is a ``ChainError``: the engine restarts
the watcher from its log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import requests
import trio
from eth_abi.abi import decode as abi_decode
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import Web3Exception
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint

from node.chain._abi import EXIT_ABI, candidate_parts, exit_proto, signed_state_proto
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
        events: decoded events, in chain order, BlockProcessed last; a
            BlocksReverted first when a reorg replaced processed blocks.
        last_block: the last block read (None: no new confirmed block).
        caught_up: whether the last block read is the newest confirmed one.
    """

    events: tuple[log_pb2.ChainEvent, ...]
    last_block: int | None
    caught_up: bool


@dataclass(frozen=True)
class _Header:
    """What the watcher needs of a block: its hash and time."""

    hash: bytes
    time_s: int


def _uint256(value: int) -> bytes:
    return int(value).to_bytes(_UINT256_BYTES, "big")


def _logs_match(logs: Sequence[Any], headers: dict[int, _Header | None]) -> bool:
    """Whether every log of a block in ``headers`` comes from that very block."""
    for log in logs:
        header = headers.get(int(log["blockNumber"]))
        if header is not None and bytes(log["blockHash"]) != header.hash:
            return False
    return True


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
        reorg_window_blocks: int = constants.chain_reorg_window_blocks,
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
            reorg_window_blocks: processed blocks whose hashes are kept to find
                the fork point of a reorg.
        """
        if from_block < 0 or confirmations < 0 or poll_interval_ms < 0:
            raise InvalidValueError(
                "watcher", "from_block, confirmations, poll_interval_ms must be >= 0"
            )
        if blocks_per_query < 1 or reorg_window_blocks < 1:
            raise InvalidValueError("watcher", "blocks_per_query, reorg_window_blocks must be >= 1")
        self.client = client
        self.contract: Contract = client.require_adjudicator()
        self.next_block = from_block
        self.confirmations = confirmations
        self.poll_interval_ms = poll_interval_ms
        self.blocks_per_query = blocks_per_query
        self.reorg_window_blocks = reorg_window_blocks
        self._last_key: tuple[int, int] = after if after is not None else (-1, -1)
        # Hashes of the last processed blocks, consecutive, oldest first.
        self._hashes: dict[int, bytes] = {}
        self._reverted: log_pb2.ChainEvent | None = None  # found, not yet delivered
        self.unreachable_polls = 0
        self.head_block: int | None = None  # the chain's latest block at the last poll
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
        ``chain_retry_interval_ms_max``; nothing is skipped meanwhile. After a
        reorg, ``deliver`` gets a ``BlocksReverted`` event, then the events of the
        canonical blocks from its ``first_block`` on, some perhaps delivered before.

        Raises:
            ChainError: the chain answered with an error, or was reorganised
                deeper than the blocks whose hashes the watcher keeps.
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
        """Reads the next range of confirmed blocks (blocking).

        Raises:
            ChainError: as ``run``; an unreachable chain too.
        """
        try:
            return self._poll()
        except (Web3Exception, requests.exceptions.RequestException) as error:
            raise chain_error("watch adjudicator events", error) from error

    def _poll(self) -> Batch:
        head = self._check_reorg()
        batch = self._read(head)
        # Taken only now, so that a revert found by a poll that failed later is not lost.
        reverted, self._reverted = self._reverted, None
        if reverted is None:
            return batch
        return Batch((reverted, *batch.events), batch.last_block, batch.caught_up)

    def _read(self, head: int) -> Batch:
        eth = self.client.w3.eth
        self.head_block = head
        safe = self.head_block - self.confirmations
        if safe < self.next_block:
            return Batch((), None, caught_up=True)
        last = min(safe, self.next_block + self.blocks_per_query - 1)
        # Hashes first, logs second: a reorg in between shows in the logs' block
        # hashes now, or as a changed last block at the next poll. The first read
        # also takes the block before it as it is now, a fork point to fall back on.
        first = self.next_block - 1 if not self._hashes and self.next_block > 0 else self.next_block
        kept = range(max(first, last - self.reorg_window_blocks + 1), last + 1)
        _, headers = self._head_and_headers(kept)
        logs = eth.get_logs(
            {"address": self.contract.address, "fromBlock": self.next_block, "toBlock": last}
        )
        if None in headers.values() or not _logs_match(logs, headers):
            logger.info("chain reorganised while blocks %d..%d were read", self.next_block, last)
            return Batch((), None, caught_up=True)
        times = {number: header.time_s for number, header in headers.items() if header}
        events: list[log_pb2.ChainEvent] = []
        for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
            key = (int(log["blockNumber"]), int(log["logIndex"]))
            if key <= self._last_key or log.get("removed"):
                continue
            event = self._decode(log, times)
            if event is not None:
                events.append(event)
                self._last_key = key
        events.append(
            log_pb2.ChainEvent(
                block_number=last,
                log_index=BLOCK_PROCESSED_LOG_INDEX,
                block_time_s=times[last],
                block_processed=log_pb2.BlockProcessed(block_number=last),
            )
        )
        self._remember(headers, last)
        self.next_block = last + 1
        return Batch(tuple(events), last, caught_up=last == safe)

    def _remember(self, headers: dict[int, _Header | None], last: int) -> None:
        """Keeps the hashes of the blocks just processed, and only the window's."""
        for number, header in headers.items():
            assert header is not None
            self._hashes[number] = header.hash
        oldest = last - self.reorg_window_blocks + 1
        for number in [n for n in self._hashes if n < oldest]:
            del self._hashes[number]
        assert len(self._hashes) <= self.reorg_window_blocks
        assert max(self._hashes) == last

    def _check_reorg(self) -> int:
        """Nothing while the last processed block is canonical; else rewinds to
        the fork point and keeps the ``BlocksReverted`` event to deliver first.
        Returns the chain's head block number, asked in the same request as the
        last block (an idle node polls often: one request per poll, not two).

        Raises:
            ChainError: no remembered block is canonical any more.
        """
        if not self._hashes:
            head, _ = self._head_and_headers(())
            return head
        numbers = sorted(self._hashes, reverse=True)
        last = numbers[0]
        head, headers = self._head_and_headers([last])
        if self._same_hash(headers, [last]):
            return head
        canonical = self._canonical(numbers[1:])
        if not canonical:
            raise ChainError(
                f"watch adjudicator events: a reorg deeper than the watcher's window: every"
                f" processed block it remembers ({numbers[-1]}..{last}) changed"
            )
        first = max(canonical) + 1
        for number in numbers:
            if number >= first:
                del self._hashes[number]
        logger.warning("chain reorganised: blocks from %d on were replaced", first)
        self.next_block = first
        self._last_key = min(self._last_key, (first - 1, BLOCK_PROCESSED_LOG_INDEX))
        if self._reverted is not None:  # an earlier revert not yet delivered
            first = min(first, self._reverted.blocks_reverted.first_block)
        self._reverted = log_pb2.ChainEvent(
            block_number=first, blocks_reverted=log_pb2.BlocksReverted(first_block=first)
        )
        return head

    def _canonical(self, numbers: Sequence[int]) -> list[int]:
        """Those of the remembered ``numbers`` whose block has the same hash now."""
        return self._same_hash(self._head_and_headers(numbers)[1], numbers)

    def _same_hash(self, headers: dict[int, _Header | None], numbers: Sequence[int]) -> list[int]:
        return [
            number
            for number in numbers
            if (header := headers[number]) is not None and header.hash == self._hashes[number]
        ]

    def _head_and_headers(self, numbers: Sequence[int]) -> tuple[int, dict[int, _Header | None]]:
        """The head block number, and the hash and time of each block in ``numbers``
        (None: the chain has no such block now), in one batch request."""
        provider = cast(JSONBaseProvider, self.client.w3.provider)
        requests_: list[tuple[RPCEndpoint, list[Any]]] = [(RPCEndpoint("eth_blockNumber"), [])]
        requests_ += [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), False]) for n in numbers]
        answers = provider.make_batch_request(requests_)
        if not isinstance(answers, list) or len(answers) != len(requests_):
            raise ChainError(f"watch adjudicator events: a batch of block reads failed: {answers}")
        head = answers[0]
        if "error" in head or not isinstance(head.get("result"), str):
            raise ChainError(f"watch adjudicator events: eth_blockNumber: {head}")
        headers: dict[int, _Header | None] = {}
        for number, answer in zip(numbers, answers[1:], strict=True):
            if "error" in answer:
                raise ChainError(
                    f"watch adjudicator events: eth_getBlockByNumber {number}: {answer['error']}"
                )
            block = answer.get("result")
            if block is None:
                headers[number] = None
                continue
            assert int(block["number"], 16) == number, "batch answers out of order"
            headers[number] = _Header(bytes(HexBytes(block["hash"])), int(block["timestamp"], 16))
        return int(head["result"], 16), headers

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
        """The event's candidate as its data carries it (``candidate_part`` and
        ``candidate_signatures``, whoever called the adjudicator), and as a whole
        ``candidate`` too when the transaction called the adjudicator directly
        (its input has the fixed part)."""
        part, signatures = candidate_parts(args["candidate"])
        message = log_pb2.ChallengeRegistered(
            channel_id=bytes(args["channelId"]),
            finalizes_at=int(args["finalizesAt"]),
            candidate_part=part,
            candidate_signatures=signatures,
        )
        call = self._input_of(tx_hash)
        if call is not None and call[0] == "challenge":
            message.candidate.CopyFrom(signed_state_proto(call[1]["fixedPart"], args["candidate"]))
        return message
