"""Harnesses for tests and scripts, not part of the running node: child ``scnode run``
processes, a stand-alone p2p node process (``python -m node.testing.p2p_runner``),
the adjudicator scenarios run against our contracts and the reference ones, and a
cheat that challenges a channel with an old state from a stopped node's log, and a
hostile peer (``Attacker``) with the measures of what it cost a node."""

from node.testing._attacker import NATIVE_ASSET as NATIVE_ASSET
from node.testing._attacker import AckedIds as AckedIds
from node.testing._attacker import Attacker as Attacker
from node.testing._attacker import AttackerThread as AttackerThread
from node.testing._attacker import FloodStats as FloodStats
from node.testing._attacker import Heard as Heard
from node.testing._attacker import Junk as Junk
from node.testing._attacker import LogShare as LogShare
from node.testing._attacker import announcement as announcement
from node.testing._attacker import directory_bytes as directory_bytes
from node.testing._attacker import envelope_bytes as envelope_bytes
from node.testing._attacker import frame_body as frame_body
from node.testing._attacker import fund_payload as fund_payload
from node.testing._attacker import junk_payloads as junk_payloads
from node.testing._attacker import ledger_prefund as ledger_prefund
from node.testing._attacker import length_prefixed as length_prefixed
from node.testing._attacker import log_share as log_share
from node.testing._attacker import now_ms as now_ms
from node.testing._attacker import payload_fields as payload_fields
from node.testing._attacker import prefund_proposals as prefund_proposals
from node.testing._attacker import rss_kib as rss_kib
from node.testing._attacker import split_frames as split_frames
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
