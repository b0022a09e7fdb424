"""Three engines in one process: Alice opens a virtual channel to Bob through Irene."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.chain import Anvil, ChainClient, ChainService, Deployment
from node.core import Signer
from node.derive import DeriveModule, Deriver
from node.engine import Engine, EngineConfig, MemoryNetwork
from node.log import EventLog
from node.protocols import ObjectiveKind, PolicyLimits, limits_policy
from tests.actors import ALICE, BOB, IRENE, dev_key
from tests.engine.engine_support import NATIVE, Party
from tests.engine.test_engine_virtual_ledger import eventually

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def payment_party(
    directory: Path,
    name: str,
    signer: Signer,
    chain_index: int,
    *,
    module: DeriveModule,
    network: MemoryNetwork,
    deployment: Deployment,
    rpc_url: str,
    start_block: int,
) -> Party:
    """A party whose engine runs virtual channels with the deployed VirtualPaymentApp."""
    log = EventLog.open(directory / name / "log")
    chain = ChainService(ChainClient(rpc_url, dev_key(chain_index), deployment.adjudicator))
    policy = limits_policy(PolicyLimits({NATIVE: 10**20}))
    notifications: list[tuple[str, object]] = []
    config = EngineConfig(
        deployment.consensus_app,
        policy,
        start_block=start_block,
        payment_app=deployment.virtual_payment_app,
    )
    engine = Engine(
        log=log,
        deriver=Deriver(log, module),
        signer=signer,
        chain=chain,
        config=config,
        notify=lambda method, params: notifications.append((method, params)),
    )
    transport = network.endpoint(signer.address, log, engine.inbound_records)
    engine.transport = transport
    return Party(name, signer, log, engine, transport, notifications)  # type: ignore[arg-type]


def three_parties(
    tmp_path: Path, module: DeriveModule, anvil: Anvil, deployment: Deployment, block: int
) -> tuple[Party, Party, Party]:
    network = MemoryNetwork()
    common = {
        "module": module,
        "network": network,
        "deployment": deployment,
        "rpc_url": anvil.url,
        "start_block": block,
    }
    return (
        payment_party(tmp_path, "alice", ALICE, 1, **common),  # type: ignore[arg-type]
        payment_party(tmp_path, "irene", IRENE, 3, **common),  # type: ignore[arg-type]
        payment_party(tmp_path, "bob", BOB, 2, **common),  # type: ignore[arg-type]
    )


async def open_ledger(leader: Party, follower: Party, amount: int) -> bytes:
    fund_id = await leader.engine.create_ledger_channel(
        follower.address, amount, challenge_duration=60
    )
    for party in (leader, follower):
        assert (await party.engine.wait_objective(fund_id)).done
    return fund_id.channel_id


def allocations(party: Party, ledger: bytes) -> list[int]:
    snapshot = party.engine.snapshot(ledger)
    assert snapshot is not None
    assert snapshot.supported is not None
    (asset_exit,) = snapshot.supported.state.outcome
    return [allocation.amount for allocation in asset_exit.allocations]


async def test_virtual_channel_through_one_intermediary_opens(
    tmp_path: Path,
    module: DeriveModule,
    anvil: Anvil,
    deployment: Deployment,
    chain_snapshot: ChainClient,
) -> None:
    parties = three_parties(tmp_path, module, anvil, deployment, chain_snapshot.block_number())
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for party in parties:
                await nursery.start(party.transport.run)
                await nursery.start(party.engine.run)
            left = await open_ledger(alice, irene, 10)
            right = await open_ledger(irene, bob, 10)
            fund_id = await alice.engine.create_payment_channel(BOB.address, [IRENE.address], 4)
            assert fund_id.kind is ObjectiveKind.VIRTUAL_FUND
            entries = [await party.engine.wait_objective(fund_id) for party in parties]
            assert [entry.failure for entry in entries] == [None, None, None]
            assert [entry.done for entry in entries] == [True, True, True]
            channel = fund_id.channel_id
            for party in (alice, bob):
                await eventually(
                    lambda p=party: p.engine.payment_channel(channel)["status"] == "OPEN"  # type: ignore[misc]
                )
            info = alice.engine.payment_channel(channel)
            assert info["funds"] == "4"
            assert info["intermediaries"] == [IRENE.address]
            for party in (alice, irene):
                assert allocations(party, left) == [6, 0, 4]
            for party in (irene, bob):
                assert allocations(party, right) == [6, 0, 4]
            nursery.cancel_scope.cancel()
    for party in parties:
        names = [name for name, _ in party.notifications]
        assert "payment_channel_updated" in names
        assert party.log.verify().ok
        party.close()
