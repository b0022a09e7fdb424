"""Generated protobuf modules (from proto/ by scripts/gen_proto.py; do not edit)."""

from node.proto import derive_pb2 as derive_pb2
from node.proto import engine_pb2 as engine_pb2
from node.proto import log_pb2 as log_pb2
from node.proto import nitro_pb2 as nitro_pb2
from node.proto import wire_pb2 as wire_pb2
