"""A whole node: event log, derivation module, chain, p2p, JSON-RPC and the engine.

The services share one nursery. The engine is built first (it rebuilds its
objectives from the log) so that the p2p transport can hand it peer messages
as soon as it listens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from node.chain import Devnet, read_devnet
from node.core import Signer, constants, to_checksum_address
from node.core.errors import ChainError, InvalidValueError, ScnodeError
from node.derive import DeriveModule, check_engine_module
from node.engine._config import EngineConfig
from node.engine._dashboard import Dashboard, register_dashboard_methods
from node.engine._engine import Engine
from node.engine._metering import watch_engine
from node.engine._rpc import NATIVE_ASSET, register_node_methods
from node.home import NodeHome
from node.log import EventLog
from node.metrics import Metrics, MetricsServer
from node.protocols import PolicyLimits, limits_policy
from node.rpc import (
    JsonValue,
    MethodRegistry,
    RpcServer,
    dashboard_page,
    load_or_create_rpc_token,
)
from node.views import ViewError, ViewService, register_view_methods

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.engine")

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = PROJECT / "wasm" / "channels.wasm"
# The conformance suite a module must pass to be the engine's (node/derive).
GOLDEN = PROJECT / "tests" / "derive" / "golden"
RPC_URL_FILE = "rpc.url"
_MODULE_CACHE = "cache"  # compiled derivation modules, so a restart does not compile again


class NodeConfigError(ScnodeError):
    """The node cannot start with the options given."""


@dataclass(frozen=True)
class NodeOptions:
    """How ``scnode run`` starts a node.

    Attributes:
        home: the node's home directory (``scnode init``).
        listen_host: the IP address libp2p listens on.
        listen_port: its TCP port (0: any free port).
        chain_url: the chain's JSON-RPC URL (else the devnet's).
        devnet: a devnet directory (``devnet.json``): chain URL and contract addresses.
        adjudicator: the adjudicator address (else the devnet's).
        consensus_app: the ConsensusApp address (else the devnet's).
        payment_app: the VirtualPaymentApp address (else the devnet's; none: no
            payment channels).
        peers: multiaddrs to dial at start (remembered in the peer store).
        module: the derivation module.
        rpc_port: the JSON-RPC port on 127.0.0.1 (0: any free port).
        deposit_max: the most the policy lets a peer's channel take from us, per asset.
        confirmations: blocks an adjudicator event needs before it is logged (None: by
            the chain's id, 0 on a development chain, 12 elsewhere).
        gossip: announce this node on the gossip topic.
        challenge_duration_min: the shortest challenge duration accepted in a channel
            (None: an hour; on a devnet, 10 s).
        challenge_duration_max: the longest (None: 30 days; on a devnet, a day).
        challenge_duration: that of the channels this node proposes when the caller
            names none (None: a day; on a devnet, 60 s).
        watchtower: serve as a watchtower for other nodes.
        watchtower_clients: the only clients a watchtower serves (empty: any peer).
        use_watchtowers: multiaddrs of watchtowers to dial and hand our channels to.
        metrics: ``(host, port)`` of a Prometheus endpoint to serve (None: none).
        views: view modules to run (beside those the home lists already), each folding
            the log into an SQLite database of its tables (docs/adr/0009-views.md).
    """

    home: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    chain_url: str | None = None
    devnet: Path | None = None
    adjudicator: str | None = None
    consensus_app: str | None = None
    payment_app: str | None = None
    peers: tuple[str, ...] = ()
    module: Path = DEFAULT_MODULE
    rpc_port: int = 0
    deposit_max: int = constants.engine_policy_deposit_max_default
    confirmations: int | None = None
    gossip: bool = True
    challenge_duration_min: int | None = None
    challenge_duration_max: int | None = None
    challenge_duration: int | None = None
    watchtower: bool = False
    watchtower_clients: tuple[str, ...] = ()
    use_watchtowers: tuple[str, ...] = ()
    metrics: tuple[str, int] | None = None
    views: tuple[Path, ...] = ()


@dataclass(frozen=True)
class NodeStarted:
    """What a started node reports (``metrics_url``: None without ``--metrics``)."""

    address: str
    peer_id: str
    multiaddrs: tuple[str, ...]
    rpc_url: str
    chain_url: str
    module_sha256: str
    metrics_url: str | None = None


@dataclass(frozen=True)
class _Chain:
    url: str
    adjudicator: str
    consensus_app: str
    start_block: int | None
    tokens: tuple[str, ...]
    payment_app: str = ""
    devnet: bool = False


def _chain_settings(options: NodeOptions) -> _Chain:
    devnet: Devnet | None = None
    if options.devnet is not None:
        try:
            devnet = read_devnet(options.devnet)
        except ChainError as error:
            raise NodeConfigError(str(error)) from None
    url = options.chain_url or (devnet.rpc_url if devnet else None)
    adjudicator = options.adjudicator or (devnet.adjudicator if devnet else None)
    consensus_app = options.consensus_app or (devnet.consensus_app if devnet else None)
    if url is None or adjudicator is None or consensus_app is None:
        raise NodeConfigError(
            "chain: give --devnet DIR, or --chain-url with --adjudicator and --consensus-app"
        )
    tokens = (devnet.token,) if devnet else ()
    start = devnet.deployed_at_block if devnet else None
    payment_app = options.payment_app or (devnet.virtual_payment_app if devnet else "")
    try:
        addresses = [
            to_checksum_address(address, name)
            for address, name in (
                (adjudicator, "--adjudicator"),
                (consensus_app, "--consensus-app"),
                (payment_app or NATIVE_ASSET, "--virtual-payment-app"),
            )
        ]
    except InvalidValueError as error:
        raise NodeConfigError(str(error)) from None
    payment_app = addresses[2] if payment_app else ""
    return _Chain(url, addresses[0], addresses[1], start, tokens, payment_app, devnet is not None)


@dataclass(frozen=True)
class _Durations:
    minimum: int
    maximum: int
    default: int


def _challenge_durations(options: NodeOptions, devnet: bool) -> _Durations:
    """The bounds and default of challenge durations: the options', else a devnet's
    short ones or the safe ones of a real chain.

    Raises:
        NodeConfigError: the default is outside the bounds, or the bounds are crossed.
    """
    if devnet:
        base = _Durations(
            constants.devnet_challenge_duration_s_min,
            constants.devnet_challenge_duration_s_max,
            constants.devnet_challenge_duration_s_default,
        )
    else:
        base = _Durations(
            constants.challenge_duration_s_min_default,
            constants.challenge_duration_s_max_default,
            constants.engine_challenge_duration_s_default,
        )
    durations = _Durations(
        base.minimum if options.challenge_duration_min is None else options.challenge_duration_min,
        base.maximum if options.challenge_duration_max is None else options.challenge_duration_max,
        base.default if options.challenge_duration is None else options.challenge_duration,
    )
    if not 0 < durations.minimum <= durations.maximum <= constants.challenge_duration_s_max:
        raise NodeConfigError(
            f"--challenge-duration-min {durations.minimum} and --challenge-duration-max "
            f"{durations.maximum}: need 0 < min <= max < 2^48"
        )
    if not durations.minimum <= durations.default <= durations.maximum:
        raise NodeConfigError(
            f"--challenge-duration {durations.default} is outside "
            f"{durations.minimum}..{durations.maximum}"
        )
    return durations


def write_rpc_url(home: NodeHome, url: str) -> None:
    """HOME/rpc.url, for the CLI commands that talk to the running node."""
    path = home.root / RPC_URL_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(url + "\n")
    os.replace(temporary, path)


def read_rpc_url(home: NodeHome) -> str:
    """The URL the running node wrote.

    Raises:
        NodeConfigError: no node has run in this home.
    """
    try:
        return (home.root / RPC_URL_FILE).read_text().strip()
    except FileNotFoundError:
        raise NodeConfigError(
            f"{home.root / RPC_URL_FILE} not found: is `scnode run --home {home.root}` running?"
        ) from None


async def run_node(
    options: NodeOptions, *, task_status: TaskStatus[NodeStarted] = trio.TASK_STATUS_IGNORED
) -> None:
    """Start every service of a node, report ``NodeStarted``, serve until cancelled.

    The API answers as soon as the engine is restored from its log; the chain client
    and libp2p (whose libraries alone take more than a second to load) join the
    running engine once loaded, and ``NodeStarted`` comes after them.

    Raises:
        NodeConfigError, HomeError, LogError, DeriveError, ChainError: cannot start.
    """
    home = NodeHome(options.home)
    key = home.node_key()
    settings = _chain_settings(options)
    module = DeriveModule.from_file(options.module, cache_dir=home.root / _MODULE_CACHE)
    _check_engine_module(module, home)
    registry = MethodRegistry()
    server = RpcServer(
        registry, load_or_create_rpc_token(home), port=options.rpc_port, dashboard=dashboard_page()
    )
    with EventLog.open(home.log_path) as log:
        views = _views(options, home, log, module)
        engine = _engine(options, settings, log, module, key, server)
        facts = _NodeFacts(engine, settings, module)
        facts.view_names = lambda: [str(view["name"]) for view in views.views()]
        register_node_methods(registry, engine, facts.node_info)
        register_view_methods(registry, views)
        dashboard = _dashboard(engine, server, facts)
        register_dashboard_methods(registry, dashboard)
        engine.on_committed = views.log_advanced
        async with trio.open_nursery() as nursery:
            metrics_url = await _serve_metrics(nursery, options, engine, facts)
            url = await nursery.start(server.run)
            write_rpc_url(home, url)
            await nursery.start(engine.run)
            await nursery.start(views.run)
            await nursery.start(dashboard.run)
            await trio.to_thread.run_sync(_load_network_libraries)
            multiaddrs = await _join_network(nursery, options, home, engine, facts)
            await _join_chain(options, settings, home, engine, facts)
            for peer in options.peers:
                await _connect(facts.p2p, peer)
            for multiaddr in options.use_watchtowers:
                tower = await _connect(facts.p2p, multiaddr, "--use-watchtower")
                if await engine.add_watchtower(tower):
                    logger.warning("watchtower %s: our channels are handed to it", tower)
            started = NodeStarted(
                engine.address,
                facts.p2p.peer_id,
                tuple(multiaddrs),
                url,
                settings.url,
                module.sha256_hex,
                metrics_url,
            )
            task_status.started(started)
            await trio.sleep_forever()


async def _serve_metrics(
    nursery: trio.Nursery, options: NodeOptions, engine: Engine, facts: _NodeFacts
) -> str | None:
    """With ``options.metrics``: count what the engine does, serve it; the endpoint's URL."""
    if options.metrics is None:
        return None
    facts.metrics = Metrics()
    watch_engine(facts.metrics, engine)
    host, port = options.metrics
    url: str = await nursery.start(MetricsServer(facts.metrics, host, port).run)
    return url


def _dashboard(engine: Engine, server: RpcServer, facts: _NodeFacts) -> Dashboard:
    """The dashboard's reads and live figures; peers once libp2p has joined."""

    def peers() -> list[JsonValue]:
        if facts.p2p is None:
            return []
        return [record.to_json() for record in facts.p2p.peer_store.records()]

    return Dashboard(
        engine,
        publish=server.publish,
        subscribers=lambda: server.subscriber_count,
        peers=peers,
        node_info=facts.node_info,
    )


def _check_engine_module(module: DeriveModule, home: NodeHome) -> None:
    """Refuse, before anything starts, a module the engine cannot rely on: it must pass
    the engine's part of the conformance suite (node.derive.engine_problems).

    Raises:
        NodeConfigError: it does not; the message says where.
    """
    if _is_reference_module(module):
        return  # the reference module: the test suite checks it
    if not GOLDEN.is_dir():
        logger.warning("no conformance suite at %s: %s is not checked", GOLDEN, module.name)
        return
    problems = check_engine_module(module, GOLDEN, home.root / _MODULE_CACHE)
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise NodeConfigError(
            f"--module {module.name} cannot be the engine's module: it fails the conformance"
            f" checks the engine relies on (run `scnode derive check {module.name}`):"
            f" {'; '.join(problems[:3])}{more}."
            " Load it as a view instead (--view)."
        )


def _is_reference_module(module: DeriveModule) -> bool:
    """Whether ``module`` is the reference module this checkout ships."""
    try:
        return module.wasm == DEFAULT_MODULE.read_bytes()
    except OSError:
        return False


def _views(
    options: NodeOptions, home: NodeHome, log: EventLog, module: DeriveModule
) -> ViewService:
    """The views: the engine module's, those the home lists, ``--view`` files.

    Raises:
        NodeConfigError: a ``--view`` module is refused.
    """
    views = ViewService(
        home.views_path, log, engine_module=module, cache_dir=home.root / _MODULE_CACHE
    )
    try:
        views.load(options.views)
    except ViewError as error:
        raise NodeConfigError(str(error)) from None
    return views


def _load_network_libraries() -> None:
    """web3 and libp2p, loaded in a worker thread while the API answers."""
    from node.chain import ChainService
    from node.p2p import P2PNode

    assert ChainService is not None
    assert P2PNode is not None


class _NodeFacts:
    """What ``get_node_info`` says; the network parts once they have joined."""

    def __init__(self, engine: Engine, settings: _Chain, module: DeriveModule) -> None:
        self.engine = engine
        self.settings = settings
        self.module = module
        self.p2p: Any = None
        self.chain_id: int | None = None
        self.chain_key_address: str | None = None
        self.confirmations: int | None = None
        self.metrics: Metrics | None = None
        self.view_names: Callable[[], list[str]] = list

    def queue_sizes(self) -> dict[str, JsonValue]:
        sizes: dict[str, JsonValue] = dict(self.engine.queue_sizes())
        if self.p2p is not None:
            sizes["p2p_deliveries"] = self.p2p.deliveries.statistics().current_buffer_used
        return sizes

    def node_info(self) -> dict[str, JsonValue]:
        engine, settings = self.engine, self.settings
        return {
            "address": engine.address,
            "peer_id": self.p2p.peer_id if self.p2p is not None else None,
            "multiaddrs": list(self.p2p.multiaddrs()) if self.p2p is not None else [],
            "chain": {
                "url": settings.url,
                "chain_id": self.chain_id,
                "adjudicator": settings.adjudicator,
                "consensus_app": settings.consensus_app,
                "chain_key_address": self.chain_key_address,
                "confirmations": self.confirmations,
            },
            "module": {"name": self.module.name, "sha256": self.module.sha256.hex()},
            "views": self.view_names(),
            "log_last_seq": engine.log.last_seq,
            "objectives_running": len(engine.state.running),
            "queues": self.queue_sizes(),
            "restart": {
                "snapshot_seq": engine.restored.snapshot_seq,
                "tail_records": engine.restored.tail_records,
            },
        }


async def _join_network(
    nursery: trio.Nursery,
    options: NodeOptions,
    home: NodeHome,
    engine: Engine,
    facts: _NodeFacts,
) -> list[str]:
    """libp2p on the node key, handed to the running engine as its transport."""
    from node.p2p import P2PConfig, P2PNode

    p2p = P2PNode(
        private_key=home.node_key(),
        state_dir=home.p2p_path,
        config=P2PConfig(
            listen_host=options.listen_host, port=options.listen_port, gossip=options.gossip
        ),
        ledgers=engine.ledger_offers,
    )
    facts.p2p = p2p
    if facts.metrics is not None:
        facts.metrics.add_gauge(
            "scnode_peers_connected",
            lambda: [((), float(sum(record.connected for record in p2p.peer_store.records())))],
        )
    # Routes only through ledgers that both of their ends announce.
    engine.announced = p2p.directory.routable_offers
    if p2p.gossip is not None:
        engine.on_ledgers_changed = p2p.gossip.announce_soon
    await engine.attach_running(p2p)
    multiaddrs: list[str] = await nursery.start(p2p.run)
    return multiaddrs


async def _join_chain(
    options: NodeOptions, settings: _Chain, home: NodeHome, engine: Engine, facts: _NodeFacts
) -> None:
    """The chain client, handed to the running engine."""
    from node.chain import ChainClient, ChainService, default_confirmations

    client = ChainClient(settings.url, home.chain_key(), settings.adjudicator)
    facts.chain_key_address = client.address
    facts.chain_id = await trio.to_thread.run_sync(lambda: int(client.w3.eth.chain_id))
    start_block = settings.start_block
    if start_block is None:
        start_block = await trio.to_thread.run_sync(client.block_number)
    confirmations = options.confirmations
    if confirmations is None:
        confirmations = default_confirmations(facts.chain_id)
    facts.confirmations = confirmations
    service = ChainService(client)
    service.metrics = facts.metrics
    await engine.attach_chain(service, start_block, confirmations)


def _engine(
    options: NodeOptions,
    settings: _Chain,
    log: EventLog,
    module: DeriveModule,
    key: bytes,
    server: RpcServer,
) -> Engine:
    """The engine, rebuilt from the log, with the policy the options set (no chain yet)."""
    durations = _challenge_durations(options, settings.devnet)
    limits = PolicyLimits(
        dict.fromkeys((NATIVE_ASSET, *settings.tokens), options.deposit_max),
        challenge_duration_s_min=durations.minimum,
        challenge_duration_s_max=durations.maximum,
    )
    return Engine(
        log=log,
        module=module,
        signer=Signer(key),
        chain=None,
        config=EngineConfig(
            settings.consensus_app,
            limits_policy(limits),
            confirmations=options.confirmations or 0,
            payment_app=settings.payment_app,
            challenge_duration_s=durations.default,
            limits=limits,
            watchtower=options.watchtower,
            watchtower_clients=_watchtower_clients(options),
        ),
        notify=server.publish,
        wanted=server.wanted,
    )


def _watchtower_clients(options: NodeOptions) -> frozenset[str] | None:
    """The clients a watchtower serves (None: any).

    Raises:
        NodeConfigError: one is not an address.
    """
    if not options.watchtower_clients:
        return None
    try:
        return frozenset(
            to_checksum_address(client, "--watchtower-client")
            for client in options.watchtower_clients
        )
    except InvalidValueError as error:
        raise NodeConfigError(str(error)) from None


async def _connect(p2p: object, multiaddr: str, option: str = "--peer") -> str:
    """Dial a peer; its address."""
    from node.p2p import P2PNode

    assert isinstance(p2p, P2PNode)
    try:
        address = await p2p.connect(multiaddr)
    except InvalidValueError as error:
        raise NodeConfigError(f"{option} {multiaddr}: {error}") from None
    logger.info("peer %s at %s", address, multiaddr)
    return address
