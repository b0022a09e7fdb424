"""The WASM derivation host: load a module, check its ABI, feed it batches of log
records, query it, snapshot and restore it, swap modules (docs/derive-abi.md)."""

from node.derive._conformance import CheckResult as CheckResult
from node.derive._conformance import Outcome as Outcome
from node.derive._conformance import check_module as check_module
from node.derive._conformance import load_cases as load_cases
from node.derive._deriver import Deriver as Deriver
from node.derive._deriver import LogSource as LogSource
from node.derive._deriver import channel_view as channel_view
from node.derive._deriver import channel_views as channel_views
from node.derive._deriver import fold_range as fold_range
from node.derive._deriver import instance_at as instance_at
from node.derive._deriver import totals as totals
from node.derive._errors import ModuleRefusedError as ModuleRefusedError
from node.derive._errors import ModuleTrapError as ModuleTrapError
from node.derive._errors import RecordRejectedError as RecordRejectedError
from node.derive._host import DeriveInstance as DeriveInstance
from node.derive._host import DeriveModule as DeriveModule
from node.derive._host import Limits as Limits
from node.derive._host import deterministic_config as deterministic_config
from node.derive._host import frame_records as frame_records
from node.derive._reference import ReferenceFold as ReferenceFold
