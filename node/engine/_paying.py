"""Many payments from a client: ``pay`` calls sent as JSON-RPC batches, a few in flight.

One call per payment would cost a connection and a loop step each; a batch of
calls is answered concurrently by the node, whose loop folds them into one log
write, and several batches in flight keep that loop busy while the answers of
the previous ones travel back.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from node.core import constants
from node.rpc import RpcConnectionError, RpcError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PaymentRun:
    """What a run of payments did.

    Attributes:
        count: payments answered (all of them: a run stops at the first error).
        paid: the channel's cumulative total paid after the last of them.
        seconds: wall time from the first call sent to the last answer.
    """

    count: int
    paid: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Payments answered per second."""
        return self.count / self.seconds if self.seconds > 0 else 0.0


def batch_sizes(count: int, batch: int) -> list[int]:
    """``count`` split into batches of at most ``batch`` (pure)."""
    if count < 0 or batch < 1:
        raise ValueError(f"count {count} and batch {batch}: expected count >= 0, batch >= 1")
    return [min(batch, count - start) for start in range(0, count, batch)]


def pay_calls_body(channel_id: str, amount: int, size: int) -> bytes:
    """The JSON of a batch of ``size`` ``pay`` calls (pure)."""
    params = {"channel_id": channel_id, "amount": str(amount)}
    calls = [
        {"jsonrpc": "2.0", "id": index, "method": "pay", "params": params} for index in range(size)
    ]
    return json.dumps(calls, separators=(",", ":")).encode("ascii")


def paid_of_answers(status: int, body: bytes, size: int) -> int:
    """The largest cumulative total in a batch's answers (pure).

    Raises:
        RpcError: a call was refused (the first refusal, e.g. not enough funds).
        RpcConnectionError: not an answer to every call of the batch.
    """
    try:
        answers = json.loads(body)
    except ValueError:
        raise RpcConnectionError(f"HTTP {status}: the body is not JSON") from None
    if isinstance(answers, dict) and isinstance(answers.get("error"), dict):
        error = answers["error"]
        raise RpcError(int(error.get("code", 0)), str(error.get("message")))
    if not isinstance(answers, list) or len(answers) != size:
        raise RpcConnectionError(f"HTTP {status}: expected {size} answers to the batch")
    paid = 0
    for answer in answers:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            raise RpcError(int(error.get("code", 0)), str(error.get("message")))
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or not str(result.get("paid", "")).isdigit():
            raise RpcConnectionError(f"HTTP {status}: a pay answer without 'paid'")
        paid = max(paid, int(result["paid"]))
    return paid


class BatchPayer:
    """Pays on one channel through a node's JSON-RPC interface, in batches.

    Args:
        url: the node's RPC URL, ``http://host:port``.
        token: its RPC token.
        batch: calls per batch (at most ``constants.rpc_batch_calls_max``).
        in_flight: batches sent before the first answer is awaited.
        timeout_ms: the longest one batch may take.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch: int = constants.rpc_batch_calls_max,
        in_flight: int = constants.rpc_client_batches_in_flight_default,
        timeout_ms: int = constants.rpc_client_timeout_ms,
    ) -> None:
        if not 1 <= batch <= constants.rpc_batch_calls_max:
            raise ValueError(f"batch: {batch} not in 1..{constants.rpc_batch_calls_max}")
        if in_flight < 1:
            raise ValueError(f"in_flight: {in_flight} is not positive")
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"url: {url!r} is not http://host:port")
        self._host, self._port = parts.hostname, parts.port
        self._token = token
        self._batch = batch
        self._in_flight = in_flight
        self._timeout_s = timeout_ms / 1000

    def pay(
        self, channel_id: str, amount: int, count: int, progress: Progress | None = None
    ) -> PaymentRun:
        """Pay ``amount`` ``count`` times; ``progress(n)`` after each answered batch of n.

        Raises:
            RpcError: the node refused a payment (the payments before it may stand).
            RpcConnectionError: the node is unreachable or did not answer JSON-RPC.
        """
        sizes = batch_sizes(count, self._batch)
        start = time.perf_counter()
        paid = done = 0
        with ThreadPoolExecutor(self._in_flight, thread_name_prefix="pay") as pool:
            pending: set[Future[tuple[int, int]]] = set()
            try:
                for size in sizes:
                    if len(pending) >= self._in_flight:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        paid, done = self._took(finished, paid, done, progress)
                    pending.add(pool.submit(self._post, channel_id, amount, size))
                paid, done = self._took(wait(pending).done, paid, done, progress)
            finally:
                for future in pending:
                    future.cancel()
        return PaymentRun(done, paid, time.perf_counter() - start)

    @staticmethod
    def _took(
        finished: set[Future[tuple[int, int]]], paid: int, done: int, progress: Progress | None
    ) -> tuple[int, int]:
        for future in finished:
            size, total = future.result()  # raises the batch's refusal
            paid = max(paid, total)
            done += size
            if progress is not None:
                progress(size)
        return paid, done

    def _post(self, channel_id: str, amount: int, size: int) -> tuple[int, int]:
        """One batch: its size and the largest total paid it answered."""
        body = pay_calls_body(channel_id, amount, size)
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        headers: dict[str, Any] = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Connection": "close",
        }
        try:
            connection.request("POST", "/", body, headers)
            response = connection.getresponse()
            answer = response.read(constants.rpc_response_bytes_max + 1)
        except (OSError, http.client.HTTPException) as error:
            raise RpcConnectionError(f"pay batch: {error}") from error
        finally:
            connection.close()
        return size, paid_of_answers(response.status, answer, size)
