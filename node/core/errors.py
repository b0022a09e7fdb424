"""The node's exceptions: few and sharp, split by who is at fault.

* ``InvalidValueError`` — a value breaks a Nitro rule (range, shape, checksum);
  it names the offending field.
* ``PeerProtocolError`` — a peer sent something malformed or against the
  protocol: drop it, log it, answer with a rejection; never crash.
* ``ChainError`` — the chain refused or failed us (revert, no funds, RPC down).
* ``LogClosedError`` / ``LogBusyError`` / ``LogCorruptError`` — the event log
  was used after close, is held by another process, or fails its integrity check;
  ``LogPrunedError`` — the records asked for are archived, no longer in the live log.
* ``DeriveError`` — a derivation module was refused or trapped.
* ``ProtocolError`` — an objective cannot take a request or an input: it breaks a
  protocol rule; ``PeerStateError`` when a peer's state or proposal is at fault.
"""

from __future__ import annotations

import enum


class ScnodeError(Exception):
    """Base of every error scnode raises on purpose."""


class InvalidValueError(ScnodeError, ValueError):
    """A value breaks a Nitro rule. ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidSignatureError(InvalidValueError):
    """A signature is malformed or recovers to no usable address."""


class PeerProtocolError(ScnodeError):
    """A peer broke the wire protocol; the input is dropped and logged."""


class ChainError(ScnodeError):
    """The chain refused a transaction or could not be reached."""


class LogError(ScnodeError):
    """Base of the event log's errors."""


class LogClosedError(LogError):
    """The log was used after ``close()``."""


class LogBusyError(LogError):
    """Another process (or another handle in this one) holds the log open."""


class LogNotFoundError(LogError):
    """No event log exists at the path, and creating one was not asked for."""


class LogStorageError(LogError):
    """RocksDB failed underneath the log (I/O error, full disk, foreign database)."""


class LogCorruptError(LogError):
    """A record fails its integrity check; ``seq`` is the first bad one."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"record {seq}: {message}")
        self.seq = seq


class LogPrunedError(LogError):
    """Records asked for were archived and pruned from the live log.

    ``first_seq`` is the first record the live log still holds; the ones below
    it are in the archives ``scnode log archive`` wrote.
    """

    def __init__(self, first_seq: int, message: str) -> None:
        super().__init__(message)
        self.first_seq = first_seq


class DeriveError(ScnodeError):
    """A derivation module was refused, trapped, or answered nonsense."""


class ProtocolError(ScnodeError):
    """A request or input breaks a protocol rule; the objective is left unchanged."""


class PeerFault(enum.Enum):
    """Why a peer's state or proposal was refused; names match the wire's RejectionReason."""

    MALFORMED = "MALFORMED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_TURN = "WRONG_TURN"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    NOT_A_PARTICIPANT = "NOT_A_PARTICIPANT"
    STALE_VOUCHER = "STALE_VOUCHER"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CHANNEL_NOT_OPEN = "CHANNEL_NOT_OPEN"


class PeerStateError(ProtocolError, PeerProtocolError):
    """A peer's signed state or ledger proposal breaks the protocol. ``fault`` says how."""

    def __init__(self, fault: PeerFault, message: str) -> None:
        super().__init__(f"{fault.value}: {message}")
        self.fault = fault
