"""Metrics of real engines: in-process engines paying through Irene count what they did,
and a ``scnode run --metrics`` process serves every documented metric after a payment."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import trio
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.engine._metering import watch_engine
from node.metrics import METRICS, Metrics
from node.testing import SpawnedNode, node_command, spawn_node
from tests.engine.engine_processes import NodeProcess, init_home, wait_done
from tests.engine.engine_support import Setting, start_parties, until
from tests.engine.test_engine_payments import open_payment_channel

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PAYMENTS = 60
PAYERS = 6
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by family name."""
    families: Samples = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [(sample.labels, sample.value) for sample in family.samples]
    return families


def value(samples: Samples, family: str, **labels: str) -> float:
    """The sample of ``family`` with exactly these labels."""
    return next(number for found, number in samples[family] if found == labels)


def histogram_count(samples: Samples, family: str) -> float:
    return max(number for labels, number in samples[family] if labels.get("le") == "+Inf")


async def test_in_process_engines_count_what_they_did(setting: Setting) -> None:
    parties = setting.path()
    alice, _, bob = parties
    metrics = {party.name: Metrics() for party in parties}
    first_seq = {party.name: party.log.last_seq for party in parties}
    for party in parties:
        watch_engine(metrics[party.name], party.engine)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 10**5)

            async def payer() -> None:
                for _ in range(PAYMENTS // PAYERS):
                    await alice.engine.pay(channel, 1)

            async with trio.open_nursery() as payers:
                for _ in range(PAYERS):
                    payers.start_soon(payer)
            await until(
                lambda: bob.engine.payment_channel(channel),
                lambda view: view["received"] == str(PAYMENTS),
            )
            scraped = {
                name: parse(generate_latest(each.registry).decode())
                for name, each in metrics.items()
            }
            nursery.cancel_scope.cancel()
    a, b, i = scraped["alice"], scraped["bob"], scraped["irene"]
    assert value(a, "scnode_payments", direction="sent") == PAYMENTS
    vouchers = value(a, "scnode_vouchers", direction="sent")
    assert 1 <= vouchers <= PAYMENTS  # one voucher may cover several payments
    assert value(b, "scnode_vouchers", direction="received") == vouchers
    assert value(b, "scnode_payments", direction="received") == vouchers
    assert value(b, "scnode_vouchers", direction="sent") == 0
    for party in parties:
        samples = scraped[party.name]
        appended = party.log.last_seq - first_seq[party.name]
        assert value(samples, "scnode_log_records") == appended
        assert value(samples, "scnode_log_last_seq") == party.log.last_seq
        assert value(samples, "scnode_log_first_seq") == 1
        appends = value(samples, "scnode_log_appends")
        assert 1 <= appends <= appended
        assert histogram_count(samples, "scnode_log_fsync_seconds") >= appends
        assert value(samples, "scnode_log_bytes") > 100 * appended
        assert histogram_count(samples, "scnode_engine_step_seconds") >= appends
        assert value(samples, "scnode_derive_records") >= appended
        assert value(samples, "scnode_messages", direction="sent") >= 1
        assert value(samples, "scnode_messages", direction="received") >= 1
        assert value(samples, "scnode_chain_confirmed_block") >= 1
        assert value(samples, "scnode_chain_head_block") >= value(
            samples, "scnode_chain_confirmed_block"
        )
    assert value(a, "scnode_objectives", kind="direct_fund", status="done") == 1
    assert value(a, "scnode_objectives", kind="virtual_fund", status="done") == 1
    assert value(i, "scnode_objectives", kind="direct_fund", status="done") == 2
    assert value(a, "scnode_transactions", kind="deposit", outcome="mined") == 1
    assert value(a, "scnode_gas_used", kind="deposit") > 20_000
    for party in parties:
        party.close()


# ---------------------------------------------------------------- a node process


def test_a_node_serves_every_documented_metric(tmp_path: Path, devnet: Path) -> None:
    started: list[SpawnedNode] = []
    try:
        for index, name in enumerate(("alice", "bob")):
            home = init_home(tmp_path, name, index)
            peers = [started[0].multiaddr] if started else []
            command = node_command(
                home, devnet=devnet, peers=peers, options=["--metrics", "127.0.0.1:0"]
            )
            started.append(spawn_node(command, home / "stderr.txt", timeout_s=30))
        alice, bob = started
        url = alice.lines["metrics on"]
        payer = NodeProcess(
            "alice", tmp_path / "alice", alice.process, alice.address, alice.multiaddr,
            alice.rpc_url, tmp_path / "alice" / "stderr.txt",
        )  # fmt: skip
        ledger = payer.call("create_ledger_channel", counterparty=bob.address, amount="1000000")
        wait_done(payer, ledger["objective_id"])
        created = payer.call(
            "create_payment_channel", counterparty=bob.address, amount="1000", intermediaries=[]
        )
        wait_done(payer, created["objective_id"])
        for _ in range(5):
            payer.call("pay", channel_id=created["channel_id"], amount="1")
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        samples = parse(text)
        for info in METRICS:
            family = info.name.removesuffix("_total")
            assert family in samples, info.name
            for labels, _ in samples[family]:
                assert set(labels) - {"le"} <= set(info.labels), (info.name, labels)
        assert value(samples, "scnode_payments", direction="sent") == 5
        assert value(samples, "scnode_peers_connected") == 1
        assert "# TYPE scnode_log_fsync_seconds histogram" in text
    finally:
        for node in started:
            node.process.terminate()
            node.process.wait(timeout=15)
            if node.process.stdout is not None:
                node.process.stdout.close()
