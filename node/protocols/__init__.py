"""Protocol objectives as pure functions: DirectFund, DirectDefund, the ledger channel.

No I/O here: ``update`` checks an event and returns the objective after it;
``crank`` reads a ``ChannelSnapshot`` and returns the effects due and the pause
point. The engine runs the effects and records what happened in the log.
"""

from node.protocols._checks import check_peer_state as check_peer_state
from node.protocols._directdefund import DirectDefund as DirectDefund
from node.protocols._directdefund import crank_direct_defund as crank_direct_defund
from node.protocols._directdefund import direct_defund_from_final as direct_defund_from_final
from node.protocols._directdefund import new_direct_defund as new_direct_defund
from node.protocols._directdefund import update_direct_defund as update_direct_defund
from node.protocols._directfund import DirectFund as DirectFund
from node.protocols._directfund import crank_direct_fund as crank_direct_fund
from node.protocols._directfund import direct_fund_from_prefund as direct_fund_from_prefund
from node.protocols._directfund import funding_thresholds as funding_thresholds
from node.protocols._directfund import new_direct_fund as new_direct_fund
from node.protocols._directfund import update_direct_fund as update_direct_fund
from node.protocols._effects import CrankResult as CrankResult
from node.protocols._effects import Effect as Effect
from node.protocols._effects import Event as Event
from node.protocols._effects import SendSignedState as SendSignedState
from node.protocols._effects import StateReceived as StateReceived
from node.protocols._effects import SubmitConcludeAndTransfer as SubmitConcludeAndTransfer
from node.protocols._effects import SubmitDeposit as SubmitDeposit
from node.protocols._effects import TransactionFailed as TransactionFailed
from node.protocols._effects import TransactionKind as TransactionKind
from node.protocols._effects import TransactionSubmitted as TransactionSubmitted
from node.protocols._ids import ObjectiveId as ObjectiveId
from node.protocols._ids import ObjectiveKind as ObjectiveKind
from node.protocols._ids import parse_objective_id as parse_objective_id
from node.protocols._ledger import Add as Add
from node.protocols._ledger import Balance as Balance
from node.protocols._ledger import LedgerChannel as LedgerChannel
from node.protocols._ledger import LedgerOutcome as LedgerOutcome
from node.protocols._ledger import Proposal as Proposal
from node.protocols._ledger import QueuedProposal as QueuedProposal
from node.protocols._ledger import Remove as Remove
from node.protocols._ledger import SignedProposal as SignedProposal
from node.protocols._ledger import apply_proposal as apply_proposal
from node.protocols._ledger import ledger_next_to_sign as ledger_next_to_sign
from node.protocols._ledger import ledger_outcome_from_exit as ledger_outcome_from_exit
from node.protocols._ledger import ledger_propose as ledger_propose
from node.protocols._ledger import ledger_receive as ledger_receive
from node.protocols._ledger import ledger_sign_next as ledger_sign_next
from node.protocols._ledger import ledger_unacknowledged as ledger_unacknowledged
from node.protocols._ledger import new_ledger_channel as new_ledger_channel
from node.protocols._objective import Objective as Objective
from node.protocols._objective import crank as crank
from node.protocols._objective import update as update
from node.protocols._policy import ApprovalPolicy as ApprovalPolicy
from node.protocols._policy import Decision as Decision
from node.protocols._policy import PolicyLimits as PolicyLimits
from node.protocols._policy import approve_within_limits as approve_within_limits
from node.protocols._policy import limits_policy as limits_policy
from node.protocols._snapshot import ChannelSnapshot as ChannelSnapshot
from node.protocols._waiting import DirectDefundWaitingFor as DirectDefundWaitingFor
from node.protocols._waiting import DirectFundWaitingFor as DirectFundWaitingFor
from node.protocols._waiting import WaitingFor as WaitingFor
from node.protocols._waiting import is_done as is_done
