"""The RocksDB event log: append batches, read ranges, snapshots, integrity checks,
and archives of a pruned prefix."""

from node.log._archive import DEFAULT_CODEC as DEFAULT_CODEC
from node.log._archive import ArchiveHeader as ArchiveHeader
from node.log._archive import ArchiveReader as ArchiveReader
from node.log._archive import Codec as Codec
from node.log._archive import write_archive as write_archive
from node.log._history import LogHistory as LogHistory
from node.log._history import chain_archives as chain_archives
from node.log._records import KIND_BY_CASE as KIND_BY_CASE
from node.log._records import KIND_NAMES as KIND_NAMES
from node.log._records import record_hash as record_hash
from node.log._records import seq_key as seq_key
from node.log._store import EventLog as EventLog
from node.log._summary import kind_name as kind_name
from node.log._summary import short_hex as short_hex
from node.log._summary import summarise as summarise
from node.log._types import PreparedBatch as PreparedBatch
from node.log._types import SeqRange as SeqRange
from node.log._types import Snapshot as Snapshot
from node.log._types import VerifyReport as VerifyReport
