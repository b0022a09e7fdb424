"""Peer-to-peer networking: identity, reliable messaging, gossip, peer store."""

from typing import TYPE_CHECKING

from node._lazy import lazy_exports

if TYPE_CHECKING:
    from node.p2p._framing import encode_varint as encode_varint
    from node.p2p._gossip import ANNOUNCEMENT_TOPIC as ANNOUNCEMENT_TOPIC
    from node.p2p._gossip import DirectoryEntry as DirectoryEntry
    from node.p2p._gossip import Gossip as Gossip
    from node.p2p._gossip import LedgerOffers as LedgerOffers
    from node.p2p._gossip import PeerDirectory as PeerDirectory
    from node.p2p._gossip import sign_announcement as sign_announcement
    from node.p2p._gossip import verify_announcement as verify_announcement
    from node.p2p._host import MESSAGE_PROTOCOL as MESSAGE_PROTOCOL
    from node.p2p._host import make_host as make_host
    from node.p2p._host import own_multiaddrs as own_multiaddrs
    from node.p2p._identity import address_bytes_from_peer_id as address_bytes_from_peer_id
    from node.p2p._identity import address_from_peer_id as address_from_peer_id
    from node.p2p._identity import key_pair_from_private_key as key_pair_from_private_key
    from node.p2p._identity import parse_address as parse_address
    from node.p2p._identity import peer_id_from_private_key as peer_id_from_private_key
    from node.p2p._messenger import NETWORK_ERRORS as NETWORK_ERRORS
    from node.p2p._messenger import ContactResolver as ContactResolver
    from node.p2p._messenger import Delivery as Delivery
    from node.p2p._messenger import Messenger as Messenger
    from node.p2p._messenger import MessengerOptions as MessengerOptions
    from node.p2p._messenger import PeerContact as PeerContact
    from node.p2p._peerstore import PeerRecord as PeerRecord
    from node.p2p._peerstore import PeerStore as PeerStore
    from node.p2p._peerstore import parse_peer_multiaddr as parse_peer_multiaddr
    from node.p2p._service import P2PConfig as P2PConfig
    from node.p2p._service import P2PNode as P2PNode
    from node.p2p._service import startup_banner as startup_banner

# libp2p takes more than half a second to import: a name loads its module when first used.
__getattr__, __dir__ = lazy_exports(__name__, __file__)
