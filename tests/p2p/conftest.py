"""Shared fixtures of the p2p tests: the test actors and node homes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from node.home import NodeHome


@dataclass(frozen=True)
class Actor:
    name: str
    key: bytes
    address: str
    peer_id: str


# PROTOCOL.md, "Test actors".
ACTORS = (
    Actor(
        "alice",
        bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d"),
        "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE",
        "16Uiu2HAmSjXJqsyBJgcBUU2HQmykxGseafSatbpq5471XmuaUqyv",
    ),
    Actor(
        "bob",
        bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4"),
        "0xBBB676f9cFF8D242e9eaC39D063848807d3D1D94",
        "16Uiu2HAmJDxLM8rSybX78FH51iZq9PdrwCoCyyHRBCndNzcAYMes",
    ),
    Actor(
        "irene",
        bytes.fromhex("febb3b74b0b52d0976f6571d555f4ac8b91c308dfa25c7b58d1e6a7c3f50c781"),
        "0x111A00868581f73AB42FEEF67D235Ca09ca1E8db",
        "16Uiu2HAmHntR3SGeS7iF2tdeNBefSahXBhmTrqVozVLHydxzkaZn",
    ),
    Actor(
        "ivan",
        bytes.fromhex("1ea91a2724b40fb8fed6a3648d49e9431996c09744fb841b718377fb0700f3e7"),
        "0xA8d2D06aCE9c7FFc24Ee785C2695678aeCDfd7A0",
        "16Uiu2HAm1hgN2MkrhGen8JPrBBYyXACbZtfqJmraN53XiHYCeoFi",
    ),
)
ALICE, BOB, IRENE, IVAN = ACTORS


def make_home(root: Path, actor: Actor) -> NodeHome:
    """A fresh node home holding the actor's key."""
    home = NodeHome(root / actor.name)
    home.initialise(node_key=actor.key)
    return home


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, NodeHome]:
    """A home for each actor, by name."""
    return {actor.name: make_home(tmp_path, actor) for actor in ACTORS}
