"""Harnesses for tests and scripts, not part of the running node: child ``scnode run``
processes, a stand-alone p2p node process (``python -m node.testing.p2p_runner``), and
the adjudicator scenarios run against our contracts and the reference ones."""

from node.testing._chain_scenarios import ScenarioRun as ScenarioRun
from node.testing._chain_scenarios import Step as Step
from node.testing._chain_scenarios import run_scenarios as run_scenarios
from node.testing._message_owner import MessageOwner as MessageOwner
from node.testing._spawn import SpawnedNode as SpawnedNode
from node.testing._spawn import SpawnError as SpawnError
from node.testing._spawn import node_command as node_command
from node.testing._spawn import spawn_node as spawn_node
