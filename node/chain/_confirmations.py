"""How many confirmations to wait for on a chain, by its id. Pure."""

from __future__ import annotations

from node.core import constants
from node.core.errors import InvalidValueError


def default_confirmations(chain_id: int) -> int:
    """The confirmations a chain event needs before the node logs it, unless configured.

    Development chains (``constants.chain_development_ids``: 31337 for anvil and
    hardhat, 1337 for ganache and ``geth --dev``) mine on demand and never
    reorganise: 0, an event counts once mined. Any other chain gets
    ``constants.chain_confirmations_safe`` (12), deep enough for the reorgs seen
    on public chains and far inside the watcher's reorg window.

    Args:
        chain_id: the chain's EIP-155 id (``eth_chainId``).

    Raises:
        InvalidValueError: ``chain_id`` is not a positive integer.
    """
    if type(chain_id) is not int or chain_id <= 0:
        raise InvalidValueError("chain_id", f"expected a positive integer, got {chain_id!r}")
    if chain_id in constants.chain_development_ids:
        return 0
    return constants.chain_confirmations_safe
