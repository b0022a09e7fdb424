"""A local devnet: anvil plus our contracts, described in ``DIR/devnet.json``.

``devnet_up`` starts anvil (detached, so it outlives the command), deploys the
adjudicator, both apps and a test token, gives each node account coin and
tokens, and writes the RPC URL, addresses and node keys to the file the nodes
read. ``devnet_down`` stops that anvil by its pid and removes the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from node.chain._anvil import ANVIL_DEV_KEYS, _is_anvil, start_anvil, stop_anvil
from node.chain._artifacts import TEST_TOKEN, load_artifact
from node.chain._client import ChainClient
from node.chain._devnet_file import DEVNET_FILE, Devnet, DevnetNode, devnet_node_key, read_devnet
from node.chain._service import deploy_contracts
from node.core import Signer
from node.core.errors import ChainError

NODE_COIN_WEI = 1_000 * 10**18
NODE_TOKENS = 1_000_000 * 10**18
TOKEN_SUPPLY = 10**9 * 10**18
NODES_MAX = 64


def devnet_up(directory: Path, nodes: int) -> Devnet:
    """Starts a devnet and writes ``directory/devnet.json``.

    Raises:
        ChainError: one is already running there, ``nodes`` is out of range,
            or anvil or a deployment failed (anvil is then stopped).
    """
    if not 1 <= nodes <= NODES_MAX:
        raise ChainError(f"devnet: --nodes must be in [1, {NODES_MAX}], got {nodes}")
    path = directory / DEVNET_FILE
    if path.exists():
        running = read_devnet(directory)
        if _is_anvil(running.anvil_pid):
            raise ChainError(f"devnet: already up in {directory} (anvil pid {running.anvil_pid})")
    directory.mkdir(parents=True, exist_ok=True)
    anvil = start_anvil(directory / "anvil.log", detached=True)
    try:
        devnet = _deploy_and_fund(anvil.url, anvil.pid, nodes)
    except ChainError:
        stop_anvil(anvil.pid)
        raise
    text = json.dumps(asdict(devnet), indent=2) + "\n"
    path.write_text(text)
    return devnet


def _deploy_and_fund(url: str, pid: int, nodes: int) -> Devnet:
    deployer = ChainClient(url, bytes.fromhex(ANVIL_DEV_KEYS[0].removeprefix("0x")))
    first_block = deployer.block_number() + 1
    deployment = deploy_contracts(deployer, token_supply=TOKEN_SUPPLY)
    assert deployment.token is not None
    token = deployer.contract(load_artifact(TEST_TOKEN), deployment.token)
    accounts = []
    for index in range(nodes):
        signer = Signer(devnet_node_key(index))
        deployer.rpc("fund node", "anvil_setBalance", signer.address, hex(NODE_COIN_WEI))
        deployer.transact("fund node tokens", token.functions.transfer(signer.address, NODE_TOKENS))
        accounts.append(DevnetNode(signer.address, "0x" + signer.private_key.hex()))
    return Devnet(
        rpc_url=url,
        chain_id=int(deployer.w3.eth.chain_id),
        anvil_pid=pid,
        adjudicator=deployment.adjudicator,
        consensus_app=deployment.consensus_app,
        virtual_payment_app=deployment.virtual_payment_app,
        token=deployment.token,
        deployed_at_block=first_block,
        nodes=tuple(accounts),
    )


def devnet_down(directory: Path) -> bool:
    """Stops the devnet described in ``directory`` and removes its file.

    Returns:
        True if its anvil was running and is now stopped; False if it had already gone.

    Raises:
        ChainError: there is no devnet file in ``directory``.
    """
    devnet = read_devnet(directory)
    stopped = stop_anvil(devnet.anvil_pid)
    (directory / DEVNET_FILE).unlink()
    return stopped
