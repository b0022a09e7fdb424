"""Why the engine refused an API command."""

from __future__ import annotations

import enum

from node.core.errors import ScnodeError


class Refusal(enum.Enum):
    """Kinds of refusal; the RPC layer maps each to an error code."""

    INVALID = "INVALID"  # the request breaks a rule (bad amounts, not a participant)
    NOT_FOUND = "NOT_FOUND"  # no such channel or objective
    CONFLICT = "CONFLICT"  # the channel is busy or in the wrong state for this
    OBJECTIVE_NOT_FOUND = "OBJECTIVE_NOT_FOUND"  # no such objective
    UNAVAILABLE = "UNAVAILABLE"  # the node could not log it: nothing happened, try again


class CommandRefusedError(ScnodeError):
    """The engine refused a command; nothing was logged but the refusal."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


class EngineFatalError(ScnodeError):
    """The engine cannot go on (its event log refuses every write): the node stops."""
