"""The node's metrics: one object the engine, log, deriver, p2p and chain code update.

Updates are meant for hot paths, so they cost next to nothing: counters are plain
ints added to once per step or per write (never once per payment), histograms are
a bisection and two additions (``Histogram.observe``, no lock), and gauges are
not updated at all: they are read when Prometheus scrapes (``add_gauge``). Only
the scrape builds ``prometheus_client`` metric families (``collect``), in the
thread that serves it (the node's trio thread, between engine steps).

``METRICS`` names every metric with its type, labels and meaning; the README
documents the same list and a test holds the two (and a real scrape) together.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PREFIX: Final = "scnode_"


@dataclass(frozen=True)
class MetricInfo:
    """One metric as documented: name, Prometheus type, label names, help text."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


METRICS: Final[tuple[MetricInfo, ...]] = (
    MetricInfo(
        "scnode_payments_total",
        "counter",
        ("direction",),
        "Payments: sent = pay requests answered with a voucher; received = vouchers accepted"
        " from payers (each raises a channel's total: a payment as the payee sees it).",
    ),
    MetricInfo(
        "scnode_vouchers_total",
        "counter",
        ("direction",),
        "Vouchers logged: sent = signed by this node, received = accepted from a payer.",
    ),
    MetricInfo(
        "scnode_messages_total",
        "counter",
        ("direction",),
        "Channel-protocol messages: sent = logged to a peer, received = handed over by p2p.",
    ),
    MetricInfo(
        "scnode_messages_in_flight",
        "gauge",
        (),
        "Messages of ours that peers have not acknowledged yet (sent again until they are).",
    ),
    MetricInfo(
        "scnode_messages_in_flight_bytes",
        "gauge",
        (),
        "Bytes of the messages peers have not acknowledged yet.",
    ),
    MetricInfo("scnode_peers_connected", "gauge", (), "Peers with an open libp2p connection."),
    MetricInfo(
        "scnode_log_appends_total",
        "counter",
        (),
        "Durable writes of records to the event log (one write batch, one fsync each).",
    ),
    MetricInfo("scnode_log_records_total", "counter", (), "Records appended to the event log."),
    MetricInfo("scnode_log_bytes_total", "counter", (), "Stored bytes of the records appended."),
    MetricInfo(
        "scnode_log_fsync_seconds",
        "histogram",
        (),
        "Time to fsync the event log's write-ahead log, per durable write.",
    ),
    MetricInfo("scnode_log_last_seq", "gauge", (), "The last record of the event log."),
    MetricInfo(
        "scnode_log_first_seq",
        "gauge",
        (),
        "The first record the live log holds (above 1 once a prefix was archived and pruned).",
    ),
    MetricInfo(
        "scnode_engine_step_seconds",
        "histogram",
        (),
        "One engine step: its inputs validated, its records written, its effects run.",
    ),
    MetricInfo(
        "scnode_engine_step_inputs",
        "histogram",
        (),
        "Inputs one engine step drained (its batch size).",
    ),
    MetricInfo(
        "scnode_derive_fold_seconds",
        "histogram",
        (),
        "One fold of a step's (or a replay's) records by the derivation module.",
    ),
    MetricInfo(
        "scnode_derive_records_total", "counter", (), "Records folded by the derivation module."
    ),
    MetricInfo(
        "scnode_objectives",
        "gauge",
        ("kind", "status"),
        "Objectives the engine holds, by kind and status (running, done, failed).",
    ),
    MetricInfo("scnode_chain_head_block", "gauge", (), "The chain's latest block, as last polled."),
    MetricInfo(
        "scnode_chain_confirmed_block",
        "gauge",
        (),
        "The last block whose confirmed events the log holds.",
    ),
    MetricInfo(
        "scnode_transactions_total",
        "counter",
        ("kind", "outcome"),
        "Transactions this node sent, by adjudicator operation and outcome (submitted,"
        " mined, failed).",
    ),
    MetricInfo(
        "scnode_gas_used_total", "counter", ("kind",), "Gas used by this node's mined transactions."
    ),
)
INFO_BY_NAME: Final[Mapping[str, MetricInfo]] = {info.name: info for info in METRICS}
assert all(info.name.startswith(PREFIX) for info in METRICS)
assert all(info.name.endswith("_total") == (info.kind == "counter") for info in METRICS), (
    "counters, and only counters, end in _total"
)

# Histogram buckets (upper bounds). Seconds from 50 µs to 10 s; batch sizes in powers of 2
# up to engine_batch_inputs_max and beyond.
SECONDS_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
COUNT_BUCKETS: Final = tuple(float(2**power) for power in range(0, 15))

DIRECTIONS: Final = ("sent", "received")


class Histogram:
    """A histogram with fixed bucket bounds: ``observe`` is one bisection, two additions.

    Not locked: one writer at a time per histogram (the engine's loop, or the log's
    write lock) and readers that only read.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        assert bounds
        assert list(bounds) == sorted(set(bounds)), bounds
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count of observations at or below it)`` per bucket, +Inf last."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(_float_text, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets


def _float_text(value: float) -> str:
    return repr(float(value))


Sample = tuple[tuple[str, ...], float]  # label values (in the metric's order), value
GaugeRead = Callable[[], Iterable[Sample]]


class Metrics:
    """Counters, histograms and scrape-time gauges of one node (its own registry).

    Attributes are what the node's parts update; ``registry`` is what an exporter
    serves (with the process's CPU and memory beside the ``scnode_`` metrics).
    """

    def __init__(self) -> None:
        self.payments_sent = 0
        self.payments_received = 0
        self.vouchers_sent = 0
        self.vouchers_received = 0
        self.messages_sent = 0
        self.messages_received = 0
        self.log_appends = 0
        self.log_records = 0
        self.log_bytes = 0
        self.derive_records = 0
        self.transactions: dict[tuple[str, str], int] = {}  # (kind, outcome) -> count
        self.gas_used: dict[str, int] = {}  # kind -> gas
        self.fsync_seconds = Histogram(SECONDS_BUCKETS)
        self.step_seconds = Histogram(SECONDS_BUCKETS)
        self.step_inputs = Histogram(COUNT_BUCKETS)
        self.fold_seconds = Histogram(SECONDS_BUCKETS)
        self._gauges: dict[str, list[GaugeRead]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)

    def add_gauge(self, name: str, read: GaugeRead) -> None:
        """Read ``name`` with ``read()`` at each scrape: ``(label values, value)`` pairs.

        Several readers of one name add up their samples (a node's parts each count
        theirs).
        """
        info = INFO_BY_NAME[name]
        assert info.kind == "gauge", name
        self._gauges.setdefault(name, []).append(read)

    def transaction(self, kind: str, outcome: str, gas_used: int = 0) -> None:
        """A transaction of ``kind`` (its adjudicator operation) was submitted, mined or
        failed; ``gas_used`` once mined."""
        label = snake_case(kind)
        key = (label, outcome)
        self.transactions[key] = self.transactions.get(key, 0) + 1
        if gas_used:
            self.gas_used[label] = self.gas_used.get(label, 0) + gas_used

    def collect(self) -> Iterator[Metric]:
        """Every ``scnode_`` metric as it stands (called by the registry at a scrape)."""
        counters: dict[str, Iterable[Sample]] = {
            "scnode_payments_total": _directed(self.payments_sent, self.payments_received),
            "scnode_vouchers_total": _directed(self.vouchers_sent, self.vouchers_received),
            "scnode_messages_total": _directed(self.messages_sent, self.messages_received),
            "scnode_log_appends_total": [((), self.log_appends)],
            "scnode_log_records_total": [((), self.log_records)],
            "scnode_log_bytes_total": [((), self.log_bytes)],
            "scnode_derive_records_total": [((), self.derive_records)],
            "scnode_transactions_total": sorted(self.transactions.items()),
            "scnode_gas_used_total": [
                ((kind,), gas) for kind, gas in sorted(self.gas_used.items())
            ],
        }
        histograms = {
            "scnode_log_fsync_seconds": self.fsync_seconds,
            "scnode_engine_step_seconds": self.step_seconds,
            "scnode_engine_step_inputs": self.step_inputs,
            "scnode_derive_fold_seconds": self.fold_seconds,
        }
        for info in METRICS:
            if info.kind == "counter":
                yield _counter(info, counters[info.name])
            elif info.kind == "histogram":
                histogram = histograms[info.name]
                family = HistogramMetricFamily(info.name, info.help)
                family.add_metric([], histogram.cumulative(), histogram.sum)
                yield family
            elif info.name in self._gauges:
                yield _gauge(info, self._gauges[info.name])


def _directed(sent: int, received: int) -> list[Sample]:
    return [(("sent",), sent), (("received",), received)]


def _counter(info: MetricInfo, samples: Iterable[Sample]) -> Metric:
    # prometheus_client adds the _total suffix back.
    family = CounterMetricFamily(info.name.removesuffix("_total"), info.help, labels=info.labels)
    for labels, value in samples:
        family.add_metric(list(labels), value)
    return family


def _gauge(info: MetricInfo, readers: list[GaugeRead]) -> Metric:
    family = GaugeMetricFamily(info.name, info.help, labels=info.labels)
    totals: dict[tuple[str, ...], float] = {}
    for read in readers:
        for labels, value in read():
            totals[labels] = totals.get(labels, 0.0) + value
    for labels, value in sorted(totals.items()):
        family.add_metric(list(labels), value)
    return family


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics.collect()


_CAMEL: Final = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_case(name: str) -> str:
    """``concludeAndTransferAllAssets`` as ``conclude_and_transfer_all_assets``."""
    return _CAMEL.sub(r"_\1", name).lower()
