"""The derivation host's errors: all of them are ``DeriveError``s, split by cause."""

from __future__ import annotations

from node.core.errors import DeriveError


class ModuleRefusedError(DeriveError):
    """The bytes are not a module this host will run (imports, ABI, exports, validity)."""


class ModuleTrapError(DeriveError):
    """A call trapped (out of fuel, out of memory, a failed check): the instance was discarded.

    ``trap_code`` names the wasmtime trap code (``OUT_OF_FUEL``, ``UNREACHABLE``...), or
    ``None`` when wasmtime gave none.
    """

    def __init__(self, call: str, trap_code: str | None, message: str) -> None:
        super().__init__(f"{call} trapped ({trap_code or 'no trap code'}): {message}")
        self.call = call
        self.trap_code = trap_code


class RecordRejectedError(DeriveError):
    """The module refused a record with an error code; records before it were folded.

    ``code`` is the module's return code and ``detail`` its explanation (docs/derive-abi.md).
    """

    def __init__(self, call: str, code: int, detail: str) -> None:
        super().__init__(f"{call} returned error code {code}: {detail or 'no detail'}")
        self.call = call
        self.code = code
        self.detail = detail
