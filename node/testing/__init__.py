"""Harnesses for tests and scripts, not part of the running node: child ``scnode run``
processes, a stand-alone p2p node process (``python -m node.testing.p2p_runner``),
the adjudicator scenarios run against our contracts and the reference ones, and a
cheat that challenges a channel with an old state from a stopped node's log."""

from node.testing._chain_scenarios import ScenarioRun as ScenarioRun
from node.testing._chain_scenarios import Step as Step
from node.testing._chain_scenarios import run_scenarios as run_scenarios
from node.testing._cheat import POSTFUND_TURN_NUM as POSTFUND_TURN_NUM
from node.testing._cheat import CheatError as CheatError
from node.testing._cheat import StaleChallenge as StaleChallenge
from node.testing._cheat import challenge_with_old_state as challenge_with_old_state
from node.testing._cheat import supported_states as supported_states
from node.testing._cheat import supported_states_in as supported_states_in
from node.testing._message_owner import MessageOwner as MessageOwner
from node.testing._spawn import SpawnedNode as SpawnedNode
from node.testing._spawn import SpawnError as SpawnError
from node.testing._spawn import node_command as node_command
from node.testing._spawn import spawn_node as spawn_node
