"""Load, check and call a derivation module under wasmtime (docs/derive-abi.md).

The engine is configured for determinism (canonical NaNs; no threads, shared
memory, relaxed SIMD, GC or component model), every call runs under a fuel
budget, and each store caps its memory, its tables and its instances. Calls go
through wasmtime's unchecked raw-call entry point: the signatures are checked
once when the module is loaded, after which a call costs a few microseconds
instead of tens. That entry
point and the store/memory handles come from wasmtime-py's private ``_ffi``
layer, which is why pyproject.toml pins the wasmtime version exactly.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import wasmtime
from wasmtime import _ffi as wasmtime_ffi

from node.core.constants import (
    derive_abi_version,
    derive_fuel_per_call_max,
    derive_instances_max,
    derive_memories_max,
    derive_memory_bytes_max,
    derive_stack_bytes_max,
    derive_table_elements_max,
    derive_tables_max,
)
from node.derive._errors import ModuleRefusedError, ModuleTrapError, RecordRejectedError
from node.derive._tables import Schema, parse_schema
from node.proto import derive_pb2

WASM_MAGIC: Final = b"\x00asm\x01\x00\x00\x00"
# name -> number of i32 parameters; every function returns one i32.
REQUIRED_FUNCTIONS: Final[dict[str, int]] = {
    "abi_version": 0,
    "alloc": 1,
    "apply_batch": 2,
    "query": 2,
    "snapshot": 0,
    "restore": 2,
    "out_ptr": 0,
    "out_len": 0,
}
# Exports a module may have: the tables extension (docs/derive-abi.md, "Tables").
OPTIONAL_FUNCTIONS: Final[dict[str, int]] = {"describe_tables": 0}
_FRAME_LENGTH: Final = struct.Struct("<I")
# Names the engine configuration in cached artifacts: change it with the config.
CONFIG_TAG: Final = "det1"
_WASMTIME_VERSION: Final = importlib.metadata.version("wasmtime")


def deterministic_config() -> wasmtime.Config:
    """The engine configuration every derivation module runs under."""
    config = wasmtime.Config()
    config.cranelift_nan_canonicalization = True
    config.wasm_threads = False
    config.shared_memory = False
    config.wasm_relaxed_simd = False
    config.wasm_simd = True  # deterministic once NaNs are canonical
    config.wasm_multi_memory = False
    config.wasm_memory64 = False
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_exceptions = False
    config.wasm_component_model = False
    config.consume_fuel = True
    config.epoch_interruption = False
    config.max_wasm_stack = derive_stack_bytes_max
    config.cranelift_opt_level = "speed"
    return config


_engine: wasmtime.Engine | None = None


def shared_engine() -> wasmtime.Engine:
    """One engine per process: compiled modules belong to the engine that made them."""
    global _engine
    if _engine is None:
        _engine = wasmtime.Engine(deterministic_config())
    return _engine


def frame_records(records: Iterable[bytes]) -> bytes:
    """A batch: each record as ``u32 little-endian length || bytes``."""
    pack = _FRAME_LENGTH.pack
    parts: list[bytes] = []
    for record in records:
        parts.append(pack(len(record)))
        parts.append(record)
    return b"".join(parts)


class DeriveModule:
    """A compiled derivation module whose imports, exports and ABI version passed the checks.

    Identified by the sha256 of its bytes: snapshots are keyed by it.
    """

    def __init__(self, wasm: bytes, *, name: str = "module", cache_dir: Path | None = None) -> None:
        """Check and compile ``wasm``.

        Args:
            wasm: the module's bytes.
            name: how error messages name it (usually its file name).
            cache_dir: a private directory for compiled artifacts (keyed by the module's
                sha256, the wasmtime version and the engine config), so a restart does
                not compile again. Only artifacts this host wrote there are loaded.

        Raises:
            ModuleRefusedError: the bytes are not WebAssembly, import anything, lack or
                mistype an export, or report another ABI version. The message says which.
        """
        self.name = name
        self.wasm = bytes(wasm)
        self.sha256 = hashlib.sha256(self.wasm).digest()
        if not self.wasm.startswith(WASM_MAGIC):
            raise ModuleRefusedError(
                f"{name}: not a WebAssembly module (the first 8 bytes are "
                f"{self.wasm[:8].hex() or 'missing'}, expected {WASM_MAGIC.hex()})"
            )
        try:
            self.module = _compile(self.wasm, self.sha256, cache_dir)
        except wasmtime.WasmtimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise ModuleRefusedError(f"{name}: invalid WebAssembly: {first_line}") from None
        _check_imports(name, self.module)
        self.has_tables = _check_exports(name, self.module)
        self.schema: Schema | None = None
        probe = DeriveInstance(self)
        if probe.abi_version != derive_abi_version:
            raise ModuleRefusedError(
                f"{name}: abi_version() returned {probe.abi_version}; this host speaks ABI "
                f"version {derive_abi_version}"
            )
        if self.has_tables:
            try:
                raw = probe.describe_tables()
            except (RecordRejectedError, ModuleTrapError) as error:
                raise ModuleRefusedError(f"{name}: describe_tables failed: {error}") from None
            self.schema = parse_schema(raw, name)

    @classmethod
    def from_file(cls, path: Path, *, cache_dir: Path | None = None) -> DeriveModule:
        """Load and check the module stored at ``path``."""
        try:
            wasm = path.read_bytes()
        except OSError as error:
            raise ModuleRefusedError(f"{path}: cannot read: {error.strerror}") from None
        return cls(wasm, name=path.name, cache_dir=cache_dir)

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()


def _compile(wasm: bytes, sha256: bytes, cache_dir: Path | None) -> wasmtime.Module:
    """Compile, or load this host's own compiled artifact from ``cache_dir``."""
    engine = shared_engine()
    if cache_dir is None:
        return wasmtime.Module(engine, wasm)
    path = cache_dir / f"{sha256.hex()}-wasmtime-{_WASMTIME_VERSION}-{CONFIG_TAG}.cwasm"
    if path.is_file():
        try:
            # Read, not mapped (deserialize_file): a file changed under a mapping
            # would crash the process.
            return wasmtime.Module.deserialize(engine, path.read_bytes())
        except wasmtime.WasmtimeError:
            pass  # written by another build or config: compile again and replace it
    module = wasmtime.Module(engine, wasm)
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(module.serialize())
    os.replace(temporary, path)
    return module


def _check_imports(name: str, module: wasmtime.Module) -> None:
    if module.imports:
        listed = ", ".join(f"{item.module}::{item.name}" for item in module.imports)
        raise ModuleRefusedError(
            f"{name}: a derivation module must import nothing, but it imports {listed}"
        )


def _check_exports(name: str, module: wasmtime.Module) -> bool:
    """Check the ABI's exports; returns whether the module has the tables extension."""
    exports = {item.name: item.type for item in module.exports}
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise ModuleRefusedError(f"{name}: missing export `memory` (a linear memory)")
    i32 = wasmtime.ValType.i32()
    functions = {**REQUIRED_FUNCTIONS, **OPTIONAL_FUNCTIONS}
    for function, parameter_count in functions.items():
        kind = exports.get(function)
        wanted = f"({', '.join(['i32'] * parameter_count)}) -> i32"
        if kind is None:
            if function in OPTIONAL_FUNCTIONS:
                continue
            raise ModuleRefusedError(f"{name}: missing export `{function}` {wanted}")
        if (
            not isinstance(kind, wasmtime.FuncType)
            or kind.params != [i32] * parameter_count
            or kind.results != [i32]
        ):
            raise ModuleRefusedError(f"{name}: export `{function}` must be a function {wanted}")
    return "describe_tables" in exports


@dataclass(frozen=True)
class Limits:
    """Per-instance bounds: fuel for each call, the linear memory cap, the table cap.

    The store also holds at most ``derive_tables_max`` tables, ``derive_memories_max``
    memories and ``derive_instances_max`` instances: a module declaring more is refused
    when it is instantiated. A ``memory.grow`` or ``table.grow`` past its cap returns -1
    to the module, which may go on or trap.
    """

    fuel_per_call: int = derive_fuel_per_call_max
    memory_bytes: int = derive_memory_bytes_max
    table_elements: int = derive_table_elements_max

    def __post_init__(self) -> None:
        assert self.fuel_per_call > 0, self
        assert self.memory_bytes >= 65536, self
        assert self.table_elements >= 0, self


# Two views of the wasmtime library: calls through `_released` let other threads
# run (for calls that fold or answer), calls through `_held` keep the GIL (for
# calls of a microsecond, where handing the GIL over and back costs more than
# the call; with a read-ahead thread it can cost a whole switch interval).
_released = wasmtime_ffi.dll
_held = ctypes.PyDLL(wasmtime_ffi.dll._name)


def _bind(library: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> Any:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


_VOID = ctypes.c_void_p
_CALL_ARGUMENTS = (_VOID, _VOID, _VOID, ctypes.c_size_t, _VOID)
_call_released = _bind(_released, "wasmtime_func_call_unchecked", _VOID, *_CALL_ARGUMENTS)
_call_held = _bind(_held, "wasmtime_func_call_unchecked", _VOID, *_CALL_ARGUMENTS)
_set_fuel = _bind(_held, "wasmtime_context_set_fuel", _VOID, _VOID, ctypes.c_uint64)
_memory_data = _bind(_held, "wasmtime_memory_data", _VOID, _VOID, _VOID)
_memory_size = _bind(_held, "wasmtime_memory_data_size", ctypes.c_size_t, _VOID, _VOID)
_copy_held = ctypes.PYFUNCTYPE(_VOID, _VOID, ctypes.c_char_p, ctypes.c_size_t)(
    ctypes._memmove_addr  # type: ignore[attr-defined]
)


class _RawCall:
    """A call through ``wasmtime_func_call_unchecked`` to an all-i32 function."""

    def __init__(
        self, context: int, function: wasmtime.Func, parameters: int, *, release_gil: bool
    ) -> None:
        self._context = context
        self._values = (wasmtime_ffi.wasmtime_val_raw_t * max(parameters, 1))()
        self._parameters = parameters
        self._function = function  # keeps the function record alive
        self._function_address = ctypes.addressof(function._func)
        self._call = _call_released if release_gil else _call_held

    def __call__(self, *arguments: int) -> int:
        assert len(arguments) == self._parameters
        values = self._values
        for index, argument in enumerate(arguments):
            values[index].i32 = argument
        trap = ctypes.POINTER(wasmtime_ffi.wasm_trap_t)()
        error = self._call(
            self._context, self._function_address, values, len(values), ctypes.byref(trap)
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(error, ctypes.POINTER(wasmtime_ffi.wasmtime_error_t))
            )
        if trap:
            raise wasmtime.Trap._from_ptr(trap)
        result: int = values[0].i32
        return result


# Calls that may run long release the GIL; the rest keep it.
_LONG_CALLS: Final = frozenset({"apply_batch", "query", "snapshot", "restore", "describe_tables"})


class DeriveInstance:
    """One running instance of a module: its own store, memory, fuel and state.

    After a trap the instance is dead: every later call raises ``ModuleTrapError``.
    """

    def __init__(self, module: DeriveModule, limits: Limits | None = None) -> None:
        self.module = module
        self.limits = limits or Limits()
        self._dead: str | None = None
        self._store = wasmtime.Store(shared_engine())
        self._store.set_limits(
            memory_size=self.limits.memory_bytes,
            table_elements=self.limits.table_elements,
            instances=derive_instances_max,
            tables=derive_tables_max,
            memories=derive_memories_max,
        )
        self._store.set_fuel(self.limits.fuel_per_call)
        try:
            instance = wasmtime.Linker(shared_engine()).instantiate(self._store, module.module)
        except wasmtime.Trap as trap:
            raise _trap_error("instantiate", trap) from None
        except wasmtime.WasmtimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise ModuleRefusedError(f"{module.name}: cannot instantiate: {first_line}") from None
        exports = instance.exports(self._store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory
        self._memory_address = ctypes.addressof(memory._memory)
        self._context = ctypes.cast(self._store._context(), ctypes.c_void_p).value
        assert self._context
        self._calls: dict[str, _RawCall] = {}
        for name, parameters in {**REQUIRED_FUNCTIONS, **OPTIONAL_FUNCTIONS}.items():
            if name == "describe_tables" and not module.has_tables:
                continue
            function = exports[name]
            assert isinstance(function, wasmtime.Func)
            self._calls[name] = _RawCall(
                self._context, function, parameters, release_gil=name in _LONG_CALLS
            )
        self.tables_on = False
        self.abi_version = self._call("abi_version")

    def _call(self, name: str, *arguments: int) -> int:
        if self._dead is not None:
            raise ModuleTrapError(name, None, f"the instance trapped earlier ({self._dead})")
        error = _set_fuel(self._context, self.limits.fuel_per_call)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(error, ctypes.POINTER(wasmtime_ffi.wasmtime_error_t))
            )
        try:
            return self._calls[name](*arguments)
        except wasmtime.Trap as trap:
            error = _trap_error(name, trap)
            self._dead = str(error)
            raise error from None

    def _write_input(self, data: bytes) -> int:
        pointer = self._call("alloc", len(data)) & 0xFFFFFFFF
        if pointer == 0:
            raise RecordRejectedError("alloc", 6, f"could not allocate {len(data)} bytes")
        # Re-read after every guest call: memory.grow may move the memory.
        size = _memory_size(self._context, self._memory_address)
        if pointer + len(data) > size:
            raise ModuleTrapError("alloc", None, f"alloc returned {pointer}, outside memory")
        _copy_held(_memory_data(self._context, self._memory_address) + pointer, data, len(data))
        return pointer

    def _read_output(self) -> bytes:
        pointer = self._call("out_ptr") & 0xFFFFFFFF
        length = self._call("out_len") & 0xFFFFFFFF
        if length == 0:
            return b""
        size = _memory_size(self._context, self._memory_address)
        if pointer + length > size:
            raise ModuleTrapError("out_ptr", None, f"output [{pointer}, +{length}) outside memory")
        return ctypes.string_at(_memory_data(self._context, self._memory_address) + pointer, length)

    def _checked(self, name: str, data: bytes) -> None:
        pointer = self._write_input(data)
        code = self._call(name, pointer, len(data))
        if code != 0:
            detail = self._read_output().decode("utf-8", "replace")
            raise RecordRejectedError(name, code, detail)

    def apply_batch(self, batch: bytes) -> bytes:
        """Fold one framed batch (see ``frame_records``).

        Returns:
            The ``RowChanges`` the batch made once ``describe_tables`` was called
            (``node.derive.RowDecoder`` reads them), else nothing.

        Raises:
            RecordRejectedError: a record was refused; the ones before it were folded.
            ModuleTrapError: the call trapped; this instance is now dead.
        """
        self._checked("apply_batch", batch)
        return self._read_output() if self.tables_on else b""

    def describe_tables(self) -> bytes:
        """The module's ``TableSchema``; from now on ``apply_batch`` returns the rows each
        batch changes, the first time (and after a ``restore``) every row.

        Raises:
            RecordRejectedError: the module has no tables, or refused.
            ModuleTrapError: the call trapped; this instance is now dead.
        """
        if "describe_tables" not in self._calls:
            raise RecordRejectedError("describe_tables", 0, f"{self.module.name} has no tables")
        code = self._call("describe_tables")
        if code != 0:
            detail = self._read_output().decode("utf-8", "replace")
            raise RecordRejectedError("describe_tables", code, detail)
        self.tables_on = True
        return self._read_output()

    def apply_records(self, records: Iterable[bytes]) -> None:
        """Fold serialised LogRecords as one batch."""
        self.apply_batch(frame_records(records))

    def query(self, request: derive_pb2.Query) -> derive_pb2.QueryResult:
        """Ask the module one query."""
        pointer = self._write_input(request.SerializeToString())
        code = self._call("query", pointer, request.ByteSize())
        if code != 0:
            raise RecordRejectedError("query", code, self._read_output().decode("utf-8", "replace"))
        result = derive_pb2.QueryResult()
        try:
            result.ParseFromString(self._read_output())
        except Exception as error:  # protobuf's DecodeError has no stable public base
            raise ModuleRefusedError(f"query answer is not a QueryResult: {error}") from None
        return result

    def snapshot(self) -> bytes:
        """The module's whole state as bytes (canonical: same state, same bytes)."""
        code = self._call("snapshot")
        if code != 0:
            raise RecordRejectedError(
                "snapshot", code, self._read_output().decode("utf-8", "replace")
            )
        return self._read_output()

    def restore(self, blob: bytes) -> None:
        """Replace the module's state by a snapshot; on refusal the state is unchanged."""
        self._checked("restore", blob)

    @property
    def fuel_left(self) -> int:
        fuel: int = self._store.get_fuel()
        return fuel


def _trap_error(call: str, trap: wasmtime.Trap) -> ModuleTrapError:
    code = trap.trap_code
    message = str(trap).strip().splitlines()
    reason = next((line for line in message if "wasm trap:" in line), message[0] if message else "")
    return ModuleTrapError(call, code.name if code is not None else None, reason.strip())
