"""Engines wired to real parts (RocksDB log, wasm module, anvil) for the engine tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from node.chain import ChainClient, ChainService, Deployment
from node.core import Signer
from node.derive import DeriveModule, Deriver
from node.engine import Engine, EngineConfig, MemoryNetwork, MemoryTransport
from node.log import EventLog
from node.protocols import PolicyLimits, limits_policy
from tests.actors import dev_key

PROJECT = Path(__file__).resolve().parents[2]
MODULE_PATH = PROJECT / "wasm" / "channels.wasm"
NATIVE = "0x0000000000000000000000000000000000000000"


@dataclass
class Party:
    """One engine with its log, module and transport."""

    name: str
    signer: Signer
    log: EventLog
    engine: Engine
    transport: MemoryTransport
    notifications: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.signer.address

    def close(self) -> None:
        self.log.close()


def make_party(
    directory: Path,
    name: str,
    signer: Signer,
    *,
    module: DeriveModule,
    network: MemoryNetwork,
    deployment: Deployment,
    rpc_url: str,
    chain_index: int,
    start_block: int = 0,
    deposit_max: int = 10**20,
) -> Party:
    """A party whose engine is rebuilt from ``directory/name/log`` (new or existing)."""
    log = EventLog.open(directory / name / "log")
    deriver = Deriver(log, module)
    chain = ChainService(ChainClient(rpc_url, dev_key(chain_index), deployment.adjudicator))
    assets = [NATIVE] if deployment.token is None else [NATIVE, deployment.token]
    policy = limits_policy(PolicyLimits(dict.fromkeys(assets, deposit_max)))
    notifications: list[tuple[str, Mapping[str, object]]] = []
    engine = Engine(
        log=log,
        deriver=deriver,
        signer=signer,
        chain=chain,
        config=EngineConfig(deployment.consensus_app, policy, start_block=start_block),
        notify=lambda method, params: notifications.append((method, params)),
    )
    transport = network.endpoint(signer.address, log, engine.inbound_records)
    engine.transport = transport
    return Party(name, signer, log, engine, transport, notifications)
