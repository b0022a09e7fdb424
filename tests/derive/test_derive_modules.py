"""The host refuses bad modules with a clear error and survives modules that trap."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core import constants
from node.core.errors import DeriveError
from node.derive import (
    DeriveInstance,
    DeriveModule,
    Limits,
    ModuleRefusedError,
    ModuleTrapError,
    deterministic_config,
)
from node.proto import derive_pb2
from tests.derive.derive_strategies import CHANNELS_WASM, PAYMENTS_WASM, load_module
from tests.derive.wat_modules import (
    INFINITE_LOOP,
    MEMORY_BOMB,
    TABLE_BOMB,
    counter_module,
    tables,
    trap_at,
)

CURSOR = derive_pb2.Query(get_cursor=derive_pb2.GetCursor())


def test_counter_module_is_accepted_and_works() -> None:
    instance = DeriveInstance(DeriveModule(counter_module(), name="counter.wasm"))
    instance.apply_records([b"a", b"bc", b""])
    assert instance.query(CURSOR).cursor.last_seq == 3
    assert instance.snapshot() == (3).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("wasm", "message"),
    [
        (b"", "not a WebAssembly module (the first 8 bytes are missing"),
        (b"garbage bytes, not wasm", "not a WebAssembly module"),
        (b"\x00asm\x01\x00\x00\x00\xff\xff", "invalid WebAssembly"),
    ],
)
def test_invalid_bytes_are_refused(wasm: bytes, message: str) -> None:
    with pytest.raises(ModuleRefusedError, match=r"bad\.wasm: ") as caught:
        DeriveModule(wasm, name="bad.wasm")
    assert message in str(caught.value)


def test_a_module_with_an_import_is_refused() -> None:
    wasm = counter_module(imports='(import "env" "now" (func $now (result i64)))')
    with pytest.raises(ModuleRefusedError, match=r"must import nothing, but it imports env::now"):
        DeriveModule(wasm, name="clock.wasm")


def test_a_wrong_abi_version_is_refused() -> None:
    with pytest.raises(ModuleRefusedError, match=r"abi_version\(\) returned 2; .* ABI version 1"):
        DeriveModule(counter_module(abi_version=2), name="v2.wasm")


def test_a_missing_export_is_refused() -> None:
    with pytest.raises(ModuleRefusedError, match=r"missing export `out_len` \(\) -> i32"):
        DeriveModule(counter_module(out_len=""), name="partial.wasm")


def test_a_mistyped_export_is_refused() -> None:
    mistyped = '(func (export "out_len") (param i32) (result i32) (i32.const 0))'
    with pytest.raises(ModuleRefusedError, match=r"export `out_len` must be a function"):
        DeriveModule(counter_module(out_len=mistyped), name="mistyped.wasm")


def test_an_oversized_initial_memory_is_refused_at_instantiation() -> None:
    module = DeriveModule(counter_module(pages=40), name="big.wasm")
    with pytest.raises(ModuleRefusedError, match=r"big\.wasm: cannot instantiate: .*memory"):
        DeriveInstance(module, Limits(memory_bytes=1 << 20))


def test_an_infinite_loop_runs_out_of_fuel_and_kills_the_instance() -> None:
    module = DeriveModule(counter_module(on_record=INFINITE_LOOP))
    instance = DeriveInstance(module, Limits(fuel_per_call=1_000_000))
    with pytest.raises(ModuleTrapError, match="apply_batch trapped") as caught:
        instance.apply_records([b"x"])
    assert caught.value.trap_code == "OUT_OF_FUEL"
    with pytest.raises(ModuleTrapError, match="trapped earlier"):
        instance.query(CURSOR)


def test_a_memory_bomb_stops_at_the_cap() -> None:
    module = DeriveModule(counter_module(on_record=MEMORY_BOMB))
    instance = DeriveInstance(module, Limits(memory_bytes=4 << 20))
    with pytest.raises(ModuleTrapError) as caught:
        instance.apply_records([b"x"])
    assert caught.value.trap_code == "UNREACHABLE"


def test_a_table_bomb_stops_at_the_cap() -> None:
    module = DeriveModule(counter_module(imports=tables(1), on_record=TABLE_BOMB))
    instance = DeriveInstance(module, Limits(table_elements=1_000))
    with pytest.raises(ModuleTrapError) as caught:
        instance.apply_records([b"x"])
    assert caught.value.trap_code == "UNREACHABLE"


def test_a_table_grown_within_the_cap_is_allowed() -> None:
    grow = "(drop (table.grow 0 (ref.null func) (i32.const 100)))"
    module = DeriveModule(counter_module(imports=tables(1), on_record=grow))
    instance = DeriveInstance(module, Limits(table_elements=1_000))
    instance.apply_records([b"x", b"y"])
    assert instance.query(CURSOR).cursor.last_seq == 2


def test_an_oversized_initial_table_is_refused() -> None:
    too_large = constants.derive_table_elements_max + 1
    with pytest.raises(ModuleRefusedError, match=r"table\.wasm: cannot instantiate: .*table"):
        DeriveModule(counter_module(imports=tables(1, too_large)), name="table.wasm")


def test_a_table_at_the_cap_is_accepted() -> None:
    at_cap = constants.derive_table_elements_max
    module = DeriveModule(counter_module(imports=tables(1, at_cap)), name="table.wasm")
    assert DeriveInstance(module).abi_version == 1


def test_too_many_tables_are_refused() -> None:
    wasm = counter_module(imports=tables(constants.derive_tables_max + 1))
    refused = r"tables\.wasm: cannot instantiate: .*table count"
    with pytest.raises(ModuleRefusedError, match=refused):
        DeriveModule(wasm, name="tables.wasm")


def test_a_second_memory_is_refused() -> None:
    # Multi-memory is off in the engine: the store's memory count is a second guard.
    with pytest.raises(ModuleRefusedError, match=r"two\.wasm: invalid WebAssembly"):
        DeriveModule(counter_module(imports="(memory 1)"), name="two.wasm")


def test_the_committed_modules_fit_the_store_limits() -> None:
    for path in (CHANNELS_WASM, PAYMENTS_WASM):
        assert DeriveInstance(load_module(path)).abi_version == 1


def test_a_failed_check_traps_with_its_code() -> None:
    instance = DeriveInstance(DeriveModule(counter_module(on_record=trap_at(2))))
    instance.apply_records([b"one"])
    with pytest.raises(ModuleTrapError, match="UNREACHABLE"):
        instance.apply_records([b"two"])


def test_trap_errors_are_derive_errors() -> None:
    assert issubclass(ModuleTrapError, DeriveError)
    assert issubclass(ModuleRefusedError, DeriveError)


def test_deterministic_config_builds_an_engine() -> None:
    config = deterministic_config()
    assert config is not None


@pytest.mark.parametrize("path", [CHANNELS_WASM, PAYMENTS_WASM])
def test_the_reference_modules_export_exactly_the_abi_with_tables(path: Path) -> None:
    module = load_module(path)
    names = sorted(item.name for item in module.module.exports)
    abi = ["abi_version", "alloc", "apply_batch", "query", "snapshot", "restore"]
    assert names == sorted(["memory", *abi, "out_ptr", "out_len", "describe_tables"])
    assert module.module.imports == []
    assert module.has_tables


def test_compiled_artifacts_are_cached_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = DeriveModule.from_file(CHANNELS_WASM, cache_dir=cache)
    artifacts = list(cache.iterdir())
    assert len(artifacts) == 1
    assert artifacts[0].name.startswith(first.sha256_hex)
    second = DeriveModule.from_file(CHANNELS_WASM, cache_dir=cache)
    assert second.sha256 == first.sha256
    assert DeriveInstance(second).abi_version == 1
    artifacts[0].write_bytes(b"not an artifact")  # a damaged cache entry is rebuilt
    third = DeriveModule.from_file(CHANNELS_WASM, cache_dir=cache)
    assert DeriveInstance(third).abi_version == 1
    assert artifacts[0].read_bytes() != b"not an artifact"
