"""A dishonest participant, for tests, benchmarks and the demo: challenge a channel on
chain with an old state that everyone once signed, taken from a stopped node's log.

A node's log holds every state it accepted with the signatures it verified
(``accepted_state`` records), so also a channel's early states (the ledger's postfund,
say), which everyone signed and a newer supported state has since replaced. The
adjudicator takes any supported state as a challenge's candidate as long as its turn is
not below the turn on record: only the other participants' answer (a ``checkpoint``
with the newer state, or a counter-challenge with a later turn) keeps the old state from
finalizing. This module plays the cheat; the honest nodes must answer it.

Never imported by the node itself (tests/test_layering.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import trio

from node.chain import ChainClient, ChainService, TxResult, read_devnet
from node.core import (
    InvalidSignatureError,
    SignedState,
    Signer,
    signed_state_from_proto,
    verify_signed_state,
)
from node.core.errors import ScnodeError
from node.home import NodeHome
from node.log import EventLog

POSTFUND_TURN_NUM = 1  # the state a channel is funded under, signed by everyone


class CheatError(ScnodeError):
    """The log holds no state to cheat with, or the home's key is not a participant."""


@dataclass(frozen=True)
class StaleChallenge:
    """A challenge registered with an old state.

    Attributes:
        channel_id: the challenged channel.
        candidate: the old supported state it was registered with.
        tx: the mined ``challenge`` transaction.
        finalizes_at: when the challenge finalizes unless answered (chain time, s).
    """

    channel_id: bytes
    candidate: SignedState
    tx: TxResult
    finalizes_at: int


def supported_states(log_path: Path, channel: bytes) -> list[SignedState]:
    """Every state of ``channel`` that the log at ``log_path`` holds signed by all the
    channel's participants, by turn (see ``supported_states_in``).

    The node should be stopped: a read-only open does not see what a live node writes
    after it, and a running node would answer the cheat's challenge itself.

    Raises:
        CheatError: a merged state's signature is not its participant's (a broken log).
    """
    with EventLog.open(log_path, read_only=True) as log:
        return supported_states_in(log, channel, log_path)


def supported_states_in(
    log: EventLog, channel: bytes, where: object = "the log"
) -> list[SignedState]:
    """Every state of ``channel`` in ``log`` signed by all the channel's participants, by
    turn. A state's signatures may come in several records (ours first, the others'
    later): they are put together.

    Raises:
        CheatError: a merged state's signature is not its participant's (a broken log).
    """
    assert len(channel) == 32, "a channel id is 32 bytes"
    by_hash: dict[bytes, SignedState] = {}
    for record in log.read():
        if record.WhichOneof("payload") != "accepted_state":
            continue
        accepted = record.accepted_state
        if accepted.channel_id != channel:
            continue
        signed = signed_state_from_proto(accepted.signed_state)
        known = by_hash.get(accepted.state_hash, SignedState(signed.state))
        for index, signature in signed.signatures:
            if known.signature_of(index) is None:
                known = known.with_signature(index, signature)
        by_hash[accepted.state_hash] = known
    complete = [
        signed
        for signed in by_hash.values()
        if len(signed.signer_indices) == len(signed.state.fixed.participants)
    ]
    for signed in complete:
        try:
            verify_signed_state(signed)
        except InvalidSignatureError as error:
            raise CheatError(f"{where} holds a badly signed state: {error}") from None
    return sorted(complete, key=lambda signed: signed.state.turn_num)


def challenge_with_old_state(
    home: Path,
    devnet: Path,
    channel: bytes,
    *,
    turn_num: int = POSTFUND_TURN_NUM,
    chain_key: bytes | None = None,
) -> StaleChallenge:
    """Challenge ``channel`` with the state of ``turn_num`` found in the log of the
    (stopped) node at ``home``, signed as challenger with that node's key.

    Args:
        home: the cheating node's home directory; its node key signs the challenge.
        devnet: the devnet directory (its ``devnet.json`` names the chain and adjudicator).
        channel: the channel to challenge.
        turn_num: the turn of the old state (default: the postfund).
        chain_key: the key that sends and pays for the transaction (default: the
            home's chain key, which is its node key when it has no chain.key).

    Raises:
        CheatError: no state of that turn signed by everyone, or the home's key is not
            a participant.
        ChainError: the adjudicator refused the challenge (with its reason).
    """
    node_home = NodeHome(home)
    signer = Signer(node_home.node_key())
    found = [
        signed
        for signed in supported_states(node_home.log_path, channel)
        if signed.state.turn_num == turn_num
    ]
    if not found:
        raise CheatError(
            f"the log of {home} holds no state of turn {turn_num} of 0x{channel.hex()}"
            " signed by every participant"
        )
    candidate = found[0]
    if signer.address not in candidate.state.fixed.participants:
        raise CheatError(f"{signer.address} is not a participant of 0x{channel.hex()}")
    data = read_devnet(devnet)
    client = ChainClient(data.rpc_url, chain_key or node_home.chain_key(), data.adjudicator)
    challenge = functools.partial(
        ChainService(client).challenge, candidate, signer.sign_challenge(candidate.state)
    )
    tx = trio.run(challenge)
    finalizes_at = client.status(channel).finalizes_at
    assert finalizes_at > 0, "a registered challenge has a finalization time"
    return StaleChallenge(channel, candidate, tx, finalizes_at)
