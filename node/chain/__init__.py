"""The chain side of the node: adjudicator transactions, events, and local devnets.

``ChainService`` sends transactions (from trio, through ``trio.to_thread``) and
sends them again with higher fees when they are not mined, ``ChainWatcher``
turns confirmed adjudicator logs into ``log_pb2.ChainEvent`` and survives
reorgs, ``default_confirmations`` says how deep an event must be on a chain,
``running_anvil`` / ``start_anvil`` run a local chain for tests and devnets.
"""

from typing import TYPE_CHECKING

from node._lazy import lazy_exports

if TYPE_CHECKING:
    from node.chain._abi import candidate_parts as candidate_parts
    from node.chain._abi import encode_outcome as encode_outcome
    from node.chain._abi import fixed_part_tuple as fixed_part_tuple
    from node.chain._abi import outcome_tuple as outcome_tuple
    from node.chain._abi import sign_state_tuples as sign_state_tuples
    from node.chain._abi import signature_bytes_of as signature_bytes_of
    from node.chain._abi import signature_tuple as signature_tuple
    from node.chain._abi import signed_variable_part as signed_variable_part
    from node.chain._abi import state_hash_of as state_hash_of
    from node.chain._abi import variable_part_proto as variable_part_proto
    from node.chain._abi import variable_part_tuple as variable_part_tuple
    from node.chain._anvil import ANVIL_DEV_KEYS as ANVIL_DEV_KEYS
    from node.chain._anvil import Anvil as Anvil
    from node.chain._anvil import anvil_binary as anvil_binary
    from node.chain._anvil import running_anvil as running_anvil
    from node.chain._anvil import start_anvil as start_anvil
    from node.chain._anvil import stop_anvil as stop_anvil
    from node.chain._artifacts import ADJUDICATOR as ADJUDICATOR
    from node.chain._artifacts import CONSENSUS_APP as CONSENSUS_APP
    from node.chain._artifacts import TEST_TOKEN as TEST_TOKEN
    from node.chain._artifacts import VIRTUAL_PAYMENT_APP as VIRTUAL_PAYMENT_APP
    from node.chain._artifacts import Artifact as Artifact
    from node.chain._artifacts import load_artifact as load_artifact
    from node.chain._artifacts import load_reference_artifact as load_reference_artifact
    from node.chain._client import ChainClient as ChainClient
    from node.chain._client import ChannelStatus as ChannelStatus
    from node.chain._client import Submitted as Submitted
    from node.chain._client import TxResult as TxResult
    from node.chain._client import bump_fees as bump_fees
    from node.chain._confirmations import default_confirmations as default_confirmations
    from node.chain._devnet import devnet_down as devnet_down
    from node.chain._devnet import devnet_up as devnet_up
    from node.chain._devnet_file import DEVNET_FILE as DEVNET_FILE
    from node.chain._devnet_file import Devnet as Devnet
    from node.chain._devnet_file import DevnetNode as DevnetNode
    from node.chain._devnet_file import devnet_node_key as devnet_node_key
    from node.chain._devnet_file import read_devnet as read_devnet
    from node.chain._service import NATIVE_ASSET as NATIVE_ASSET
    from node.chain._service import ChainService as ChainService
    from node.chain._service import Deployment as Deployment
    from node.chain._service import ReclaimRequest as ReclaimRequest
    from node.chain._service import deploy_contracts as deploy_contracts
    from node.chain._watcher import BLOCK_PROCESSED_LOG_INDEX as BLOCK_PROCESSED_LOG_INDEX
    from node.chain._watcher import Batch as Batch
    from node.chain._watcher import ChainWatcher as ChainWatcher

# web3 takes most of a second to import: a name loads its module when first used.
__getattr__, __dir__ = lazy_exports(__name__, __file__)
