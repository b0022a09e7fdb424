"""The test actors of PROTOCOL.md §2 and the funded anvil accounts, shared by all tests.

The actors' addresses start with no coin on a fresh anvil, so a payout to one
shows as its whole balance; anvil's dev accounts pay for transactions.
"""

from __future__ import annotations

from node.chain import ANVIL_DEV_KEYS
from node.core import Signer

ALICE = Signer(bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d"))
BOB = Signer(bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4"))
IRENE = Signer(bytes.fromhex("febb3b74b0b52d0976f6571d555f4ac8b91c308dfa25c7b58d1e6a7c3f50c781"))
IVAN = Signer(bytes.fromhex("1ea91a2724b40fb8fed6a3648d49e9431996c09744fb841b718377fb0700f3e7"))


def dev_key(index: int) -> bytes:
    """Private key of anvil dev account ``index`` (a funded chain key)."""
    return bytes.fromhex(ANVIL_DEV_KEYS[index].removeprefix("0x"))
