"""The engine: the trio loop from inputs to the log, the derivation, objectives and effects,
and the node that runs it beside p2p, the chain watcher and JSON-RPC."""

from node.engine._dispute import Settlement as Settlement
from node.engine._dispute import SettleStage as SettleStage
from node.engine._dispute import register_dispute_methods as register_dispute_methods
from node.engine._dispute import settle_on_chain as settle_on_chain
from node.engine._engine import Engine as Engine
from node.engine._engine import EngineConfig as EngineConfig
from node.engine._errors import CommandRefusedError as CommandRefusedError
from node.engine._errors import Refusal as Refusal
from node.engine._node import NodeConfigError as NodeConfigError
from node.engine._node import NodeOptions as NodeOptions
from node.engine._node import NodeStarted as NodeStarted
from node.engine._node import read_rpc_url as read_rpc_url
from node.engine._node import run_node as run_node
from node.engine._rpc import register_node_methods as register_node_methods
from node.engine._table import Entry as Entry
from node.engine._transport import MemoryNetwork as MemoryNetwork
from node.engine._transport import MemoryTransport as MemoryTransport
from node.engine._transport import Transport as Transport
from node.engine._views import ledger_channel_info as ledger_channel_info
from node.engine._views import snapshot_from_view as snapshot_from_view
