"""What ``DIR/devnet.json`` says of a local devnet, read without loading web3.

A node started with ``--devnet DIR`` reads its chain settings here before its
chain client exists (``_devnet.py`` starts and stops devnets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core import keccak256
from node.core.errors import ChainError

DEVNET_FILE = "devnet.json"


@dataclass(frozen=True)
class DevnetNode:
    """A node's chain account on the devnet.

    Attributes:
        address: its checksummed address.
        private_key: its key, hex with 0x (devnet only: these keys are public).
    """

    address: str
    private_key: str


@dataclass(frozen=True)
class Devnet:
    """What ``DIR/devnet.json`` holds.

    Attributes:
        rpc_url: HTTP JSON-RPC URL of the anvil.
        chain_id: its chain id.
        anvil_pid: pid of the anvil process.
        adjudicator: adjudicator address.
        consensus_app: ConsensusApp address.
        virtual_payment_app: VirtualPaymentApp address.
        token: TestToken address.
        deployed_at_block: first block to watch for adjudicator events.
        nodes: the funded node accounts.
    """

    rpc_url: str
    chain_id: int
    anvil_pid: int
    adjudicator: str
    consensus_app: str
    virtual_payment_app: str
    token: str
    deployed_at_block: int
    nodes: tuple[DevnetNode, ...]


def devnet_node_key(index: int) -> bytes:
    """The devnet chain key of node ``index``: deterministic, so restarts agree."""
    return keccak256(f"scnode devnet node {index}".encode())


def read_devnet(directory: Path) -> Devnet:
    """The devnet described in ``directory``.

    Raises:
        ChainError: there is no devnet file, or it is malformed.
    """
    path = directory / DEVNET_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        nodes = tuple(DevnetNode(**node) for node in data.pop("nodes"))
        return Devnet(nodes=nodes, **data)
    except FileNotFoundError as error:
        raise ChainError(f"devnet: {path} not found (is the devnet up?)") from error
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise ChainError(f"devnet: {path} is malformed: {error}") from error
