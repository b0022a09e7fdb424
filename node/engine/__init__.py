"""The engine: one trio loop from inputs to the log, the derivation, objectives and effects,
and the node that runs it beside p2p, the chain watcher and JSON-RPC."""

from node.engine._clock import REAL_CLOCK as REAL_CLOCK
from node.engine._clock import EngineClock as EngineClock
from node.engine._clock import engine_clock as engine_clock
from node.engine._clock import use_engine_clock as use_engine_clock
from node.engine._config import EngineConfig as EngineConfig
from node.engine._engine import Engine as Engine
from node.engine._engine import Restored as Restored
from node.engine._errors import CommandRefusedError as CommandRefusedError
from node.engine._errors import EngineFatalError as EngineFatalError
from node.engine._errors import Refusal as Refusal
from node.engine._messages import message_chunks as message_chunks
from node.engine._node import NodeConfigError as NodeConfigError
from node.engine._node import NodeOptions as NodeOptions
from node.engine._node import NodeStarted as NodeStarted
from node.engine._node import read_rpc_url as read_rpc_url
from node.engine._node import run_node as run_node
from node.engine._rpc import register_node_methods as register_node_methods
from node.engine._rpc import settlement_json as settlement_json
from node.engine._state import EngineState as EngineState
from node.engine._state import Entry as Entry
from node.engine._state_codec import ENGINE_SNAPSHOT_KEY as ENGINE_SNAPSHOT_KEY
from node.engine._state_codec import decode_state as decode_state
from node.engine._state_codec import encode_state as encode_state
from node.engine._transport import MemoryNetwork as MemoryNetwork
from node.engine._transport import MemoryTransport as MemoryTransport
from node.engine._transport import Transport as Transport
from node.engine._views import ledger_channel_info as ledger_channel_info
from node.engine._views import snapshot_from_view as snapshot_from_view
