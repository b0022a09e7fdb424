"""Contracts that exist only for tests, compiled on the spot with the project's
solc-js (npm ``solc``, the compiler and settings of contracts/build.js)."""

from __future__ import annotations

import json
import subprocess

from node.chain import Artifact
from node.chain._artifacts import NODE_MODULES_DIR, REPO_ROOT

# A stand-in for a contract wallet: it makes the call it is given, so the
# transaction's input is not the adjudicator call.
FORWARDER_SOURCE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;

contract Forwarder {
    function forward(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory result) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }
}
"""

_COMPILE_JS = """
const solc = require("solc");
const input = require("fs").readFileSync(0, "utf8");
process.stdout.write(solc.compile(input));
"""
_COMPILE_TIMEOUT_S = 120


def compile_contract(source: str, name: str) -> Artifact:
    """The artifact of contract ``name`` in the Solidity ``source``."""
    assert (NODE_MODULES_DIR / "solc").is_dir(), "run npm ci"
    request = {
        "language": "Solidity",
        "sources": {f"{name}.sol": {"content": source}},
        "settings": {
            "evmVersion": "cancun",
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    done = subprocess.run(
        ["node", "-e", _COMPILE_JS],
        input=json.dumps(request).encode(),
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=_COMPILE_TIMEOUT_S,
        check=True,
    )
    output = json.loads(done.stdout)
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    assert not errors, [e["formattedMessage"] for e in errors]
    contract = output["contracts"][f"{name}.sol"][name]
    return Artifact(
        name=name,
        abi=tuple(contract["abi"]),
        bytecode=bytes.fromhex(contract["evm"]["bytecode"]["object"]),
    )
