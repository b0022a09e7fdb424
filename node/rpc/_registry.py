"""The method registry: names, typed params, handlers, and the built-in methods."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from node.rpc._json import JsonValue
from node.rpc._params import Param, ParamsSpec, spec_of

Handler = Callable[..., Awaitable[JsonValue]]

_METHOD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Method:
    """A registered method. ``timeout_ms`` of ``None`` means the server's default."""

    name: str
    handler: Handler
    params: ParamsSpec
    timeout_ms: int | None
    description: str


def node_version() -> str:
    """The installed scnode version string."""
    try:
        return importlib.metadata.version("scnode")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _check_handler_takes(name: str, handler: Handler, spec: ParamsSpec) -> None:
    # A mismatch between the declared params and the handler's signature would
    # otherwise show up only as an internal error on the first call.
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # a callable without a signature: trust the declaration
    try:
        signature.bind(**{param.name: None for param in spec.params})
    except TypeError as error:
        raise ValueError(
            f"{name}: the handler does not take the declared params: {error}"
        ) from None


class MethodRegistry:
    """Methods the RPC server can call; ``version`` and ``methods`` are built in."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self.register("version", self._version, description="The scnode version string.")
        self.register("methods", self._describe, description="The methods and their params.")

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        params: ParamsSpec | Sequence[Param] | None = None,
        timeout_ms: int | None = None,
        description: str = "",
    ) -> None:
        """Add a method; the handler gets the validated params as keyword arguments.

        Args:
            name: lower_snake_case, at most 64 characters, not yet registered.
            handler: an async function returning a JSON-serialisable value.
            params: the method's params (none if omitted).
            timeout_ms: this method's time to answer, if not the server's default.
            description: one line for the ``methods`` built-in.

        Raises:
            ValueError: a bad or duplicate name, a non-positive timeout, or a handler
                whose signature does not take exactly the declared params.
        """
        if not _METHOD_NAME.fullmatch(name):
            raise ValueError(f"name {name!r}: use lower_snake_case, at most 64 characters")
        if name in self._methods:
            raise ValueError(f"name {name!r}: already registered")
        if timeout_ms is not None and timeout_ms <= 0:
            raise ValueError(f"timeout_ms: {timeout_ms} is not positive")
        spec = spec_of(params)
        _check_handler_takes(name, handler, spec)
        self._methods[name] = Method(name, handler, spec, timeout_ms, description)

    def get(self, name: str) -> Method | None:
        """The method called ``name``, if registered."""
        return self._methods.get(name)

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self._methods)

    async def _version(self) -> str:
        return node_version()

    async def _describe(self) -> list[JsonValue]:
        return [
            {
                "name": method.name,
                "params": method.params.describe(),
                "description": method.description,
            }
            for method in sorted(self._methods.values(), key=lambda method: method.name)
        ]
