"""What a watchtower client hands its tower, and what the tower keeps of it.

After each new supported state of a channel (and, as a payment channel's payee, each
larger voucher) the client hands its towers what answers a stale challenge: the
latest state every participant signed (for ``checkpoint``) and, for a payee, a
counter-challenge signed in advance (the redemption state carrying its largest
voucher, proved by the postfund, with the client's challenge signature). Nothing
needs the client's key afterwards. The tower keeps the latest request per channel,
checked (each participant that uses it its own), and what the chain reports of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from node.core import (
    FixedPart,
    InvalidSignatureError,
    SignedState,
    Signer,
    Voucher,
    channel_id,
    constants,
    recover_challenge_signer,
    verify_signed_state,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._dispute import virtual_challenge
from node.protocols._effects import SubmitChallenge
from node.protocols._snapshot import ChannelSnapshot


@dataclass(frozen=True)
class WatchRequest:
    """What a client hands its tower for one channel.

    Attributes:
        supported: the channel's latest state every participant signed.
        counter: a challenge the client signed in advance with a better state than
            ``supported`` (a payee's redemption state), or None.
        release: the channel is closed: the tower forgets it.
    """

    supported: SignedState
    counter: SubmitChallenge | None = None
    release: bool = False

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.supported.state.fixed)

    @property
    def fixed(self) -> FixedPart:
        return self.supported.state.fixed


@dataclass(frozen=True)
class WatchedChannel:
    """A channel a tower watches: each client's latest request, and what the chain says.

    Attributes:
        requests: ``(client, request)`` pairs sorted by client: every participant that
            hands this tower the channel has its own (a counter-challenge is one
            client's).
        challenge_turn: the turn of the challenge registered on chain (None: none).
        finalizes_at: when that challenge (or a conclusion) finalizes (0: neither).
        concluded: the channel was concluded on chain (nothing left to answer).
        event_block: the block of the latest event folded (a reorg from it undoes it).
    """

    requests: tuple[tuple[str, WatchRequest], ...]
    challenge_turn: int | None = None
    finalizes_at: int = 0
    concluded: bool = False
    event_block: int = 0

    @property
    def channel_id(self) -> bytes:
        return self.requests[0][1].channel_id

    @property
    def fixed(self) -> FixedPart:
        return self.requests[0][1].fixed

    def request_of(self, client: str) -> WatchRequest | None:
        return next((request for who, request in self.requests if who == client), None)

    def with_request(self, client: str, request: WatchRequest) -> WatchedChannel:
        """This channel with ``client``'s request replaced (or added)."""
        kept = [(who, known) for who, known in self.requests if who != client]
        requests = tuple(sorted([*kept, (client, request)]))
        return dataclasses.replace(self, requests=requests)

    def without(self, client: str) -> WatchedChannel | None:
        """This channel without ``client``'s request (None: no request is left)."""
        kept = tuple((who, known) for who, known in self.requests if who != client)
        return dataclasses.replace(self, requests=kept) if kept else None

    def forget_chain(self) -> WatchedChannel:
        """The requests without what the chain said (after a reorganisation)."""
        return WatchedChannel(self.requests)


def check_watch_request(request: WatchRequest, client: str) -> None:
    """A request a client sent: the client is a participant, the supported state carries
    every participant's signature, and a counter-challenge is the client's, of the
    same channel, later than the supported state and proved by it.

    Raises:
        PeerStateError: the request breaks one of those rules; ``fault`` says which.
    """
    supported = request.supported
    fixed = supported.state.fixed
    if client not in fixed.participants:
        raise PeerStateError(
            PeerFault.NOT_A_PARTICIPANT, f"{client} is not a participant of the channel"
        )
    if supported.signer_indices != frozenset(range(len(fixed.participants))):
        raise PeerStateError(PeerFault.BAD_SIGNATURE, "supported: not signed by every participant")
    try:
        verify_signed_state(supported)
    except InvalidSignatureError as error:
        raise PeerStateError(PeerFault.BAD_SIGNATURE, f"supported: {error}") from error
    if request.release:
        return
    if supported.state.is_final:
        raise PeerStateError(PeerFault.MALFORMED, "supported: a final state is concluded, not kept")
    counter = request.counter
    if counter is None:
        return
    candidate = counter.candidate
    if candidate.state.fixed != fixed:
        raise PeerStateError(PeerFault.MALFORMED, "counter: a state of another channel")
    if candidate.state.turn_num <= supported.state.turn_num:
        raise PeerStateError(
            PeerFault.WRONG_TURN,
            f"counter: turn {candidate.state.turn_num} is not after the supported"
            f" {supported.state.turn_num}",
        )
    if counter.proof != (supported,):
        raise PeerStateError(PeerFault.MALFORMED, "counter: its proof must be the supported state")
    me = fixed.participants.index(client)
    if candidate.signer_indices != frozenset({me}):
        raise PeerStateError(PeerFault.BAD_SIGNATURE, "counter: must be signed by the client only")
    try:
        verify_signed_state(candidate)
        challenger = recover_challenge_signer(candidate.state, counter.signature)
    except InvalidSignatureError as error:
        raise PeerStateError(PeerFault.BAD_SIGNATURE, f"counter: {error}") from error
    if challenger != client:
        raise PeerStateError(
            PeerFault.BAD_SIGNATURE, f"counter: challenge signed by {challenger}, not the client"
        )


def replaces(new: WatchRequest, old: WatchRequest) -> bool:
    """Whether ``new`` may replace ``old``: not an older supported state (a client only
    hurts itself with a worse counter-challenge, so the latest of those is kept)."""
    return new.supported.state.turn_num >= old.supported.state.turn_num


def watch_request_for(
    snapshot: ChannelSnapshot, signer: Signer, payment_app: str, largest: Voucher | None
) -> WatchRequest | None:
    """What ``signer`` hands its towers for a channel it is in (None: nothing to hand,
    as nothing is supported yet).

    A ledger: its latest supported state. A payment channel: its setup state, and for
    the payee paid something, the counter-challenge with the largest voucher. A
    channel closed with a final state: released.
    """
    supported = snapshot.supported
    fixed = snapshot.fixed
    if supported is None or signer.address not in fixed.participants:
        return None
    if supported.state.is_final:
        return WatchRequest(supported, release=True)
    if fixed.app_definition != payment_app or not payment_app:
        return WatchRequest(supported)
    if supported.state.turn_num > constants.postfund_turn_num:
        return None  # not a setup state: this node never signs such a payment state
    try:
        challenge = virtual_challenge(snapshot, signer, largest)
    except ProtocolError:
        return WatchRequest(supported)
    if challenge.candidate.state.turn_num <= supported.state.turn_num:
        return WatchRequest(supported)
    return WatchRequest(supported, counter=challenge)
