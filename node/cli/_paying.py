"""Many payments from a client: ``pay`` calls sent as JSON-RPC batches, a few in flight.

One call per payment would cost a connection and a loop step each; a batch of
calls is answered concurrently by the node, whose loop folds them into one log
write, and several batches in flight keep that loop busy while the answers of
the previous ones travel back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from node.rpc import BatchAnswer, JsonValue

# node.cli exports this module, and every scnode command, even --help, imports node.cli:
# node.core, node.rpc (trio) and rich are imported where they are used, not here.

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


def paid_of_results(results: Sequence[BatchAnswer]) -> int:
    """The largest cumulative total in the answers of a batch of ``pay`` calls (pure).

    Raises:
        RpcError: a call was refused (the first refusal, e.g. not enough funds).
        RpcConnectionError: an answer that is not a ``pay`` result.
    """
    from node.rpc import RpcConnectionError, RpcError

    paid = 0
    for result in results:
        if isinstance(result, RpcError):
            raise result
        total = result.get("paid") if isinstance(result, dict) else None
        if not isinstance(total, str) or not total.isdigit():
            raise RpcConnectionError("a pay answer without 'paid'")
        paid = max(paid, int(total))
    return paid


class BatchPayer:
    """Pays on one channel through a node's JSON-RPC interface, in batches.

    Args:
        url: the node's RPC URL, ``http://host:port``.
        token: its RPC token.
        batch: payments per JSON-RPC request (default: ``constants.pay_batch_payments``;
            with ``per_call``, ``constants.rpc_batch_calls_max``, also the most).
        in_flight: batches sent before the first answer is awaited (default:
            ``constants.rpc_client_batches_in_flight_default``).
        timeout_ms: the longest one batch may take (default:
            ``constants.rpc_client_timeout_ms``).
        per_call: each payment its own ``pay`` call (a JSON-RPC batch of them) instead of
            one ``pay`` call making a batch's payments (``payments``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch: int | None = None,
        in_flight: int | None = None,
        timeout_ms: int | None = None,
        per_call: bool = False,
    ) -> None:
        from node.core import constants
        from node.rpc import RpcSyncClient

        most = constants.rpc_batch_calls_max if per_call else constants.rpc_pay_payments_max
        if batch is None:
            batch = constants.rpc_batch_calls_max if per_call else constants.pay_batch_payments
        in_flight = (
            constants.rpc_client_batches_in_flight_default if in_flight is None else in_flight
        )
        timeout_ms = constants.rpc_client_timeout_ms if timeout_ms is None else timeout_ms
        if not 1 <= batch <= most:
            raise ValueError(f"batch: {batch} not in 1..{most}")
        if in_flight < 1:
            raise ValueError(f"in_flight: {in_flight} is not positive")
        self._client = RpcSyncClient(url, token, timeout_ms=timeout_ms)
        self._batch = batch
        self._in_flight = in_flight
        self._per_call = per_call

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
        from node.rpc import RpcConnectionError

        params: dict[str, JsonValue] = {"channel_id": channel_id, "amount": str(amount)}
        calls = [("pay", params)] * size
        if not self._per_call:
            calls = [("pay", {**params, "payments": size})]
        try:
            results = self._client.call_batch(calls)
        except RpcConnectionError as error:
            raise RpcConnectionError(f"pay {error}") from error
        return size, paid_of_results(results)


def pay_with_progress(
    payer: BatchPayer, channel: str, amount: int, count: int, console: Console | None
) -> PaymentRun:
    """``payer.pay`` with a live progress bar and rate on ``console`` (none: quietly)."""
    if console is None:
        return payer.pay(channel, amount, count)
    from node.cli._progress import progress_bar

    with progress_bar(console, count) as progress:
        return payer.pay(channel, amount, count, progress)
