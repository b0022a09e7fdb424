"""The metrics object: cheap updates, exposition in Prometheus's names and labels, the
documented list (README) held to what is served, and the ``/metrics`` endpoint."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trio
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.core.errors import InvalidValueError
from node.metrics import METRICS, Histogram, Metrics, MetricsServer, parse_metrics_address
from node.metrics._metrics import COUNT_BUCKETS, SECONDS_BUCKETS, snake_case

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(scnode_[a-z_]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample served, by family name (as the text format names families)."""
    text = generate_latest(metrics.registry).decode()
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [(sample.labels, sample.value) for sample in family.samples]
    return families


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The README's metrics table: name -> (type, label names)."""
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in README.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            labels = tuple(re.findall(r"`([a-z_]+)`", match[3]))
            rows[match[1]] = (match[2], labels)
    return rows


def test_the_readme_documents_every_metric_with_its_type_and_labels() -> None:
    assert documented() == {info.name: (info.kind, info.labels) for info in METRICS}


def test_names_follow_prometheus_conventions() -> None:
    for info in METRICS:
        assert re.fullmatch(r"scnode_[a-z]+(_[a-z]+)*", info.name), info.name
        assert info.name.endswith("_total") == (info.kind == "counter")
        assert not info.name.endswith("_count")
        assert not info.name.endswith("_sum")
        if "seconds" in info.name or "bytes" in info.name:
            assert info.name.split("_")[-1] in ("seconds", "bytes", "total")
        for label in info.labels:
            assert re.fullmatch(r"[a-z]+", label)


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((1.0, 2.0, 4.0))
    for value in (0.5, 1.0, 1.5, 3.0, 9.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("1.0", 2.0), ("2.0", 3.0), ("4.0", 4.0), ("+Inf", 5.0)]
    assert histogram.sum == 15.0
    assert list(SECONDS_BUCKETS) == sorted(SECONDS_BUCKETS)
    assert COUNT_BUCKETS[0] == 1.0


def test_a_scrape_serves_counters_histograms_and_gauges() -> None:
    metrics = Metrics()
    metrics.payments_sent += 3
    metrics.vouchers_received += 2
    metrics.log_records += 10
    metrics.step_seconds.observe(0.002)
    metrics.transaction("concludeAndTransferAllAssets", "mined", gas_used=21_000)
    metrics.transaction("deposit", "failed")
    metrics.add_gauge("scnode_objectives", lambda: [(("virtual_fund", "done"), 2.0)])
    metrics.add_gauge("scnode_objectives", lambda: [(("virtual_fund", "done"), 1.0)])
    families = scrape(metrics)
    assert ({"direction": "sent"}, 3.0) in families["scnode_payments"]
    assert ({"direction": "received"}, 2.0) in families["scnode_vouchers"]
    assert families["scnode_log_records"] == [({}, 10.0)]
    transactions = families["scnode_transactions"]
    assert ({"kind": "conclude_and_transfer_all_assets", "outcome": "mined"}, 1.0) in transactions
    assert ({"kind": "deposit", "outcome": "failed"}, 1.0) in transactions
    assert families["scnode_gas_used"] == [({"kind": "conclude_and_transfer_all_assets"}, 21_000)]
    assert families["scnode_objectives"] == [({"kind": "virtual_fund", "status": "done"}, 3.0)]
    steps = {labels.get("le"): number for labels, number in families["scnode_engine_step_seconds"]}
    assert steps["0.001"] == 0.0
    assert steps["0.0025"] == 1.0
    assert steps["+Inf"] == 1.0
    assert "scnode_peers_connected" not in families  # no reader: not served
    assert "process_cpu_seconds" in families


def test_snake_case() -> None:
    assert snake_case("transferAllAssets") == "transfer_all_assets"
    assert snake_case("deposit") == "deposit"


def test_parse_metrics_address() -> None:
    assert parse_metrics_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_metrics_address("localhost:0") == ("localhost", 0)
    for bad in ("9464", "127.0.0.1:99999", "http://x:1", ":1"):
        with pytest.raises(InvalidValueError, match="--metrics"):
            parse_metrics_address(bad)


def _get(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read().decode()


async def test_the_endpoint_serves_metrics_and_refuses_the_rest() -> None:
    metrics = Metrics()
    metrics.log_appends += 7
    async with trio.open_nursery() as nursery:
        url = await nursery.start(MetricsServer(metrics, "127.0.0.1", 0).run)
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/metrics", url)
        status, content_type, body = await trio.to_thread.run_sync(_get, url)
        assert status == 200
        assert content_type.startswith("text/plain")
        assert "scnode_log_appends_total 7.0" in body
        assert "# TYPE scnode_log_fsync_seconds histogram" in body
        root = url.removesuffix("/metrics")
        assert (await trio.to_thread.run_sync(_get, root + "/other"))[0] == 404
        assert (await trio.to_thread.run_sync(_get, url, "POST"))[0] == 405
        status, _, body = await trio.to_thread.run_sync(_get, url, "HEAD")
        assert (status, body) == (200, "")
        nursery.cancel_scope.cancel()
