"""Compiled contract artifacts: ours (committed) and the reference Nitro ones (npm).

The node needs no compiler at run time: it deploys and calls the ABI and
bytecode that ``node contracts/build.js`` wrote to ``contracts/artifacts``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core.errors import ChainError

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "contracts" / "artifacts"
NODE_MODULES_DIR = REPO_ROOT / "node_modules"
REFERENCE_DIR = (
    NODE_MODULES_DIR / "@statechannels" / "nitro-protocol" / "dist" / "artifacts" / "contracts"
)

# Our contract names and the reference artifact that plays the same part.
ADJUDICATOR = "Adjudicator"
CONSENSUS_APP = "ConsensusApp"
VIRTUAL_PAYMENT_APP = "VirtualPaymentApp"
TEST_TOKEN = "TestToken"
_REFERENCE_NAMES = {
    ADJUDICATOR: "NitroAdjudicator",
    CONSENSUS_APP: "ConsensusApp",
    VIRTUAL_PAYMENT_APP: "VirtualPaymentApp",
}


@dataclass(frozen=True)
class Artifact:
    """A deployable contract.

    Attributes:
        name: contract name.
        abi: the JSON ABI.
        bytecode: creation code.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes


def _read(path: Path, name: str) -> Artifact:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ChainError(f"artifact {name}: {path} is missing (run npm ci)") from error
    except json.JSONDecodeError as error:
        raise ChainError(f"artifact {name}: {path} is not JSON: {error}") from error
    bytecode = bytes.fromhex(str(data["bytecode"]).removeprefix("0x"))
    if not bytecode:
        raise ChainError(f"artifact {name}: {path} has no bytecode (an interface?)")
    return Artifact(name=name, abi=tuple(data["abi"]), bytecode=bytecode)


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Our compiled contract ``name`` (Adjudicator, ConsensusApp, VirtualPaymentApp, TestToken).

    Raises:
        ChainError: the artifact is missing or unreadable.
    """
    return _read(ARTIFACTS_DIR / f"{name}.json", name)


@functools.cache
def load_reference_artifact(name: str) -> Artifact:
    """The reference Nitro 2.x artifact that plays the part of our contract ``name``.

    Raises:
        ChainError: ``name`` has no reference counterpart, or npm ci was not run.
    """
    if name not in _REFERENCE_NAMES:
        raise ChainError(f"artifact {name}: no reference counterpart")
    reference = _REFERENCE_NAMES[name]
    return _read(REFERENCE_DIR / f"{reference}.sol" / f"{reference}.json", reference)
