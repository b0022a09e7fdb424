"""Named limits and protocol constants, unit last (``_max``, ``_bytes``, ``_s``).

Every bound the node relies on lives here so that the relations between them can
be asserted in one place (tests/core/test_core_constants.py).
"""

from __future__ import annotations

from typing import Final

# Solidity widths (PROTOCOL.md §1).
uint48_max: Final = 2**48 - 1
uint8_max: Final = 2**8 - 1
uint64_max: Final = 2**64 - 1
uint256_max: Final = 2**256 - 1
channel_nonce_max: Final = uint64_max
turn_num_max: Final = uint48_max
challenge_duration_s_max: Final = uint48_max

address_bytes: Final = 20
bytes32_bytes: Final = 32
signature_bytes: Final = 65
private_key_bytes: Final = 32
# An external destination is an address left-padded with this many zero bytes.
external_destination_prefix_bytes: Final = bytes32_bytes - address_bytes
# Guarantee metadata: left destination || right destination.
guarantee_metadata_bytes: Final = 2 * bytes32_bytes
asset_type_max: Final = uint8_max

# Allocation types (uint8 on chain).
# The exit format numbers allocation types simple=0, withdrawHelper=1, guarantee=2; the
# Nitro adjudicator reclaims only type 2 (docs/adr/0004-guarantee-allocation-type.md).
# Nitro never uses withdrawHelper, so the node refuses it.
allocation_type_simple: Final = 0
allocation_type_guarantee: Final = 2

# Turn numbers of the funding protocol.
prefund_turn_num: Final = 0
postfund_turn_num: Final = 1

# Event log.
log_format_version: Final = 1
log_hash_bytes: Final = 32
log_batch_records_max: Final = 10_000
log_commit_records_max: Final = 1_000_000  # one prepared batch (an engine step) at most
log_snapshot_key_bytes: Final = 32  # a derivation module's sha256
log_snapshot_bytes_max: Final = 1024 * 1024 * 1024
log_read_chunk_records: Final = 1024  # records fetched per RocksDB iterator
log_memtables_bytes_max: Final = 16 * 1024 * 1024  # RocksDB memtables, all families
# Archives of a pruned prefix (docs/adr/0011-log-archive.md): framed records handed to
# the compressor at once, and the longest record a frame may announce (so a corrupt
# length cannot make a reader allocate gigabytes).
log_archive_chunk_bytes: Final = 1024 * 1024
log_archive_record_bytes_max: Final = 64 * 1024 * 1024

# Wire.
wire_format_version: Final = 1
frame_size_bytes_max: Final = 4 * 1024 * 1024
message_size_bytes_max: Final = 1024 * 1024
message_payloads_max: Final = 1_000  # payloads in one message (Envelope)
# Messages in one frame. The receiver checks every envelope of a frame on its loop, at
# a few microseconds each, before it can take a break: a 4 MiB frame of 70,000 tiny
# envelopes stalled a node for 0.4-0.9 s and held 100 MB. An honest frame stays below
# p2p_frame_send_bytes_max and each of its envelopes holds a signed payload (more than
# 200 bytes), so it carries about 1,300 of them; a sender stops at this bound anyway.
frame_messages_max: Final = 4_096
# What a receiver logs per payload it validates at most (an accepted state and a decision),
# so that one receipt write of a message batch stays within log_batch_records_max.
inbound_records_per_payload_max: Final = 2

# Participants per channel (a virtual channel: payer, intermediaries, payee).
participants_min: Final = 2
participants_max: Final = 16

# Peer-to-peer messaging (node/p2p).
p2p_read_chunk_bytes: Final = 64 * 1024
# Frames this node builds stay below this (a peer may send up to frame_size_bytes_max): the
# receiver handles a frame only once it has all of it, so smaller frames overlap its work
# with the transfer of the next (measured: 256 KiB beat 64 KiB and 4 MiB for vouchers).
p2p_frame_send_bytes_max: Final = 256 * 1024
p2p_outbox_messages_max: Final = 200_000  # per peer: send() waits beyond this
p2p_delivery_batches_max: Final = 64  # bound of the delivery channel (batches of envelopes)
p2p_resend_timeout_ms: Final = 5_000
p2p_redial_backoff_ms_min: Final = 100
p2p_redial_backoff_ms_max: Final = 10_000
p2p_peers_max: Final = 1_000
p2p_multiaddrs_per_peer_max: Final = 16
p2p_announce_interval_ms: Final = 10_000
p2p_announcement_bytes_max: Final = 64 * 1024
p2p_announcement_ledgers_max: Final = 256
p2p_announcement_age_ms_max: Final = 60_000  # six announce intervals: relays take seconds
# A clock this far ahead of ours is still believed (NTP keeps clocks within ~0.1 s).
p2p_announcement_skew_ms_max: Final = 5_000

# Hostile peers (node/p2p, docs/p2p-limits.md): every peer-supplied quantity
# has a bound. Text from peers and the peer store file:
p2p_multiaddr_chars_max: Final = 256
p2p_peer_id_chars_max: Final = 128  # a secp256k1 peer id is 53 characters
# The gossip directory: at most this many nodes whose multiaddrs name one host (a sybil
# needs an address per 16 identities), and one refresh per node per this interval.
p2p_directory_entries_per_host_max: Final = 16
p2p_announcement_refresh_ms_min: Final = 1_000
# Inbound rate of one peer, token buckets refilled continuously. bench_p2p measured
# 43,759 acknowledged 200-byte messages/s on one stream (about 11.4 MB/s on the wire):
# the limits sit above that so an honest peer at full speed is never slowed, and a
# flooder gets no more than that share of the engine's input channel. The burst is one
# second of the rate; a peer in debt is not read from until it is paid back.
p2p_peer_messages_per_s_max: Final = 50_000
p2p_peer_bytes_per_s_max: Final = 32 * 1024 * 1024
# Unfinished frames: a peer has one inbound message stream (a second replaces the first),
# and the bytes buffered in unfinished frames of all peers together stay below this:
# 16 peers in the middle of a largest frame, or 256 in the middle of a 256 KiB one.
p2p_unfinished_frame_bytes_max: Final = 16 * frame_size_bytes_max
# A stream whose unfinished frame makes no progress for this long is reset.
p2p_frame_stall_ms_max: Final = 30_000
# A peer with nothing to send or acknowledge for this long loses its session (its
# outbox and the ids it sent are kept: they are the log's).
p2p_session_idle_ms: Final = 120_000
# Connections: a TCP connection must finish Noise and Yamux within this (loopback takes
# 15 ms, a 300 ms RTT link about 1.5 s), at most this many may be in the handshake at
# once (a new one pushes out the oldest, so a flood of silent sockets cannot lock out a
# newcomer), and a connection that has opened no stream by this deadline is closed.
p2p_handshake_timeout_ms: Final = 3_000
p2p_handshakes_max: Final = 64
p2p_connection_silent_ms_max: Final = 10_000
p2p_connections_max: Final = 512
# A peer the engine penalises (p2p disconnect) stays away at least this long, at most...
p2p_penalty_s_max: Final = 3_600

# Chain (node/chain).
chain_confirmations_default: Final = 0  # anvil: blocks are final when mined
# Confirmations on a chain that is not a development chain (node.chain.default_confirmations).
chain_confirmations_safe: Final = 12
# Development chains (anvil and hardhat, ganache and geth --dev): blocks are final when mined.
chain_development_ids: Final = (31337, 1337)
# The watcher keeps the hashes of this many processed blocks; it survives a reorg whose
# fork point lies among them (a deeper one is a ChainError).
chain_reorg_window_blocks: Final = 64
# A sent transaction not mined after this is sent again, same nonce, higher fee...
chain_resend_after_ms: Final = 30_000
chain_resends_max: Final = 5  # ...at most this many times
# Each resend raises the fee caps by at least 1/8 (12.5 %), the usual replacement rule.
chain_fee_bump_numerator: Final = 9
chain_fee_bump_denominator: Final = 8
chain_receipt_poll_interval_ms: Final = 100  # receipt checks while a transaction waits
chain_pending_transactions_max: Final = 256  # sent and not waited for, kept for resends
chain_poll_interval_ms: Final = 200  # how often the watcher asks for new blocks
chain_log_query_blocks_max: Final = 2_000  # blocks per eth_getLogs request
chain_receipt_timeout_ms: Final = 120_000
chain_anvil_start_timeout_ms: Final = 10_000
chain_anvil_stop_timeout_ms: Final = 5_000
chain_rpc_timeout_ms: Final = 30_000
chain_events_buffer_max: Final = 1_024  # bound of the chain-event memory channel
chain_retry_interval_ms_max: Final = 5_000  # watcher back-off cap while the RPC is down

# Derivation host (node/derive, docs/derive-abi.md).
derive_abi_version: Final = 1
derive_fuel_per_call_max: Final = 4_000_000_000
derive_memory_bytes_max: Final = 512 * 1024 * 1024
derive_stack_bytes_max: Final = 512 * 1024
# Store limits beyond memory: without them one `table.grow` of 10^9 elements took 7.8 GB
# and 23 s. Compilers emit one table, the indirect-call table, with one element per
# function whose address is taken (the reference modules: 9); 65,536 elements cost 512 KiB
# in wasmtime (8 bytes each), nothing next to the memory cap. The ABI has one memory and
# the host makes one instance per store.
derive_table_elements_max: Final = 65_536
derive_tables_max: Final = 1
derive_memories_max: Final = 1
derive_instances_max: Final = 1
derive_batch_records_max: Final = 1000
derive_batch_bytes_max: Final = 4 * 1024 * 1024
derive_snapshot_interval_records: Final = 100_000
derive_pipeline_records_min: Final = 50_000  # longer replays read ahead on a thread
derive_prefetch_batches_max: Final = 8
derive_switch_interval_s: Final = 0.0002  # GIL switch interval during read-ahead
# The tables extension (docs/derive-abi.md, "Tables"): what a module may describe.
derive_schema_tables_max: Final = 64
derive_schema_columns_max: Final = 64  # per table
derive_schema_name_length_max: Final = 63  # table and column names
derive_schema_description_length_max: Final = 1_000

# A running node's garbage collector: (young allocations, young rounds, middle rounds)
# between collections of each generation; Python's default is (700, 10, 10).
gc_thresholds: Final = (20_000, 20, 20)

# Views (node/views, docs/adr/0009-views.md): modules beside the engine's, each folded
# into an SQLite database of its tables.
views_max: Final = 32  # view modules per node
views_module_bytes_max: Final = 16 * 1024 * 1024  # a view module's .wasm
views_refresh_interval_ms: Final = 100  # a view folds what the log gained at most this often
views_fold_share_max: Final = 0.1  # of the time views fold in; a slow fold waits longer
views_refresh_interval_ms_max: Final = 2_000  # the longest a view waits to fold what came
views_catch_up_records_max: Final = 20_000  # records per worker-thread call (bounds a stop)
views_transaction_records_max: Final = 20_000  # records per SQLite transaction on a replay
views_sql_time_limit_ms: Final = 2_000  # a read-only query's time before it is interrupted
views_sql_time_limit_ms_max: Final = 60_000  # the longest a caller may ask for
views_sql_rows_max: Final = 10_000  # rows a query answers; more are cut (`truncated`)
views_sql_length_bytes_max: Final = 16 * 1024 * 1024  # a string or blob a query builds
views_sql_answer_bytes_max: Final = 32 * 1024 * 1024  # an answer's values; more are cut
views_sql_text_bytes_max: Final = 100_000  # the SQL text of one query
views_sql_progress_steps: Final = 10_000  # VM steps between two checks of the time limit
views_sql_queries_max: Final = 2  # queries a node runs at once; more wait their turn

# JSON-RPC (node/rpc).
rpc_request_bytes_max: Final = 1024 * 1024  # one HTTP request body (a call or a batch)
rpc_header_bytes_max: Final = 16 * 1024  # request line plus headers
rpc_response_bytes_max: Final = 64 * 1024 * 1024  # what a client accepts from the node
rpc_batch_calls_max: Final = 100
rpc_pay_payments_max: Final = 100_000  # payments one `pay` call makes (high-rate callers)
pay_batch_payments: Final = 500  # `scnode pay --count`: payments per request
rpc_json_depth_max: Final = 64  # nesting of arrays and objects in one request
rpc_connections_max: Final = 256  # open HTTP and WebSocket connections together
# Of those, connections that have not yet shown the token. A new connection past this
# evicts the oldest of them, so a flood of silent or token-less connections churns among
# itself and 192 slots stay with authenticated clients and subscribers. An honest client
# shows its token in its first request head, a scheduling round or two after the accept,
# and the server accepts one connection per round: honest bursts hold a handful.
rpc_unauthenticated_connections_max: Final = 64
rpc_request_timeout_ms: Final = 30_000  # a handler's time to answer one call
rpc_read_timeout_ms: Final = 10_000  # a client's time to send one whole request
# A client's time to send a request's line and headers: from the accept for a first
# request, from its first byte for a keep-alive connection's later ones. Clients send a
# head in one write; 2 s allows a slow link several round trips and bounds how long a
# slowloris holds a slot. It is the WebSocket handshake's deadline too: the upgrade is
# a request head, and the node's 101 answer completes the handshake.
rpc_header_timeout_ms: Final = 2_000
rpc_write_timeout_ms: Final = 10_000  # a client's time to take one response
rpc_linger_ms: Final = 500  # reading what a refused client still sends before closing
rpc_client_timeout_ms: Final = 60_000  # client side: longer than the server's own timeout
rpc_client_batches_in_flight_default: Final = 4  # batches of calls a client keeps sent
rpc_read_chunk_bytes: Final = 64 * 1024
rpc_subscriber_queue_max: Final = 1_024  # notifications waiting per WebSocket client
rpc_notification_bytes_max: Final = 1024 * 1024  # one notification, client side
rpc_notification_names_max: Final = 64  # names one subscriber may filter on
rpc_token_bytes: Final = 32  # entropy of the auth token
dashboard_interval_ms: Final = 1_000  # the dashboard's live figures are pushed this often
dashboard_log_tail_max: Final = 20  # log records the dashboard shows
dashboard_rate_window_s: Final = 5  # payments per second: averaged over this long

# Secret files in a node's home (node/home.py): a key is 65 bytes, a token at most 257;
# a secret file larger than this is refused unread (it is not one of ours).
secret_file_bytes_max: Final = 4 * 1024

# Ledger (consensus) channels (node/protocols).
ledger_proposals_queued_max: Final = 256  # leader: unacknowledged; follower: awaiting its signature
ledger_proposals_buffered_max: Final = 256  # follower: arrived ahead of a missing turn
ledger_guarantees_max: Final = 1_024  # guarantees one ledger outcome may hold
ledger_resend_interval_ms: Final = 1_000  # unacknowledged proposals are sent again this often
virtual_intermediaries_max: Final = 8  # intermediaries on one virtual channel's path

# Engine (node/engine).
engine_inputs_max: Final = 4_096  # bound of the engine's input channel
engine_batch_inputs_max: Final = 512  # inputs drained into one log batch
engine_crank_rounds_max: Final = 8  # sign-and-log rounds per step before it must settle
engine_tx_retry_ms: Final = 2_000  # a refused transaction is asked for again after this
engine_tx_attempts_max: Final = 5  # refusals of one transaction before the objective fails
# A peer that refused our state (say, it had not yet seen the postfund that travelled in the
# same frame) is sent our latest state again after this, at most this many times.
engine_rejection_resend_ms: Final = 250
engine_rejection_resends_max: Final = 20
# A payee that refused a voucher because it had not yet seen the channel open gets our
# latest voucher again after this, doubling up to a second, at most this many times.
engine_voucher_resend_ms: Final = 25
engine_voucher_resends_max: Final = 40
# An idle chain's BlockProcessed is logged this often.
engine_block_record_interval_ms: Final = 10_000
# The engine snapshots its state and the module's together this often (a restart folds
# at most this many records in Python after loading them).
engine_snapshot_interval_records: Final = 10_000
engine_policy_deposit_max_default: Final = 100 * 10**18  # per channel and asset, unless configured
engine_challenge_duration_s_default: Final = 86_400  # of the channels this node proposes

# What a hostile peer can cost the engine (docs/adr/0008-hostile-peers.md).
# Our messages a peer has not acknowledged: beyond either bound, new work with the
# peer is refused (API commands and its proposals) and it is disconnected a while.
# 4,096 messages hold a payment channel's vouchers for minutes of an offline payee.
engine_peer_backlog_messages_max: Final = 4_096
engine_peer_backlog_bytes_max: Final = 16 * 1024 * 1024
engine_peer_backoff_s: Final = 30  # the disconnection of a peer over its backlog
# A rejection is advice, not a duty: none is queued to a peer that has this many of
# our messages unacknowledged, and at most this many per peer per step.
engine_advice_backlog_max: Final = 64
engine_rejections_per_peer_step_max: Final = 8
# Rejected records (and log lines) per peer per window; beyond, they are counted and
# one summary record says how many were left out.
engine_rejections_logged_per_window: Final = 32
engine_rejection_window_s: Final = 10
engine_rejection_reason_chars_max: Final = 256
engine_objective_id_chars_max: Final = 100  # "VirtualDefunding-0x" + 64 hex digits is 83
# Time a step spends on one peer's payloads (signature checks) before the rest of its
# envelopes wait for the next step, and on all peers' payloads together.
engine_peer_step_budget_ms: Final = 10
# The budget of a peer whose refused inputs passed engine_rejections_logged_per_window in
# the current window: a flooder of junk takes a tenth of an honest peer's share of a step.
engine_refused_peer_step_budget_ms: Final = 1
# Such a peer's envelopes left for later do not start a step of their own (and its
# fsync) before this pause, unless other input comes: a flood paces itself.
engine_refused_peer_pause_ms: Final = 50
engine_peers_step_budget_ms: Final = 40
engine_deferred_envelopes_max: Final = 4_096  # per peer, kept for the next steps
# Objectives peers proposed that may run at once: per peer, and in all.
engine_peer_objectives_max: Final = 256
engine_peer_objectives_total_max: Final = 4_096
# A peer's proposal that got no further than its setup (no deposit of ours, no ledger
# funds locked) expires after this long, with a logged decision; checked this often.
engine_objective_expiry_s: Final = 3_600
engine_expiry_check_s: Final = 30
# Routes looked for again after leaving out announced ledgers that hold less on chain
# than their announcers claim.
engine_route_attempts_max: Final = 3
# Challenge durations of the channels peers propose: shorter ones could finalize a stale
# challenge before the node answers it; longer ones lock funds that long in a dispute.
challenge_duration_s_min_default: Final = 3_600
challenge_duration_s_max_default: Final = 30 * 86_400
# On a development chain (a devnet): short, so that disputes can be tried in seconds.
devnet_challenge_duration_s_min: Final = 10
devnet_challenge_duration_s_max: Final = 86_400
devnet_challenge_duration_s_default: Final = 60

# A watchtower's bounds: what a hostile client can make it hold (a request is about
# 1 KB: 64 clients x 1,024 channels stays under 100 MB).
watchtower_clients_max: Final = 64
watchtower_channels_per_client_max: Final = 1_024
# Settling a channel on chain re-reads the adjudicator's status this often while it waits.
dispute_poll_interval_ms: Final = 200
# A challenge by someone else reaches the log once the watcher confirms it: reads before giving up.
dispute_candidate_reads_max: Final = 50

# The Prometheus endpoint (``scnode run --metrics``): open scrapes at once, a scraper's
# time to send its request and take the answer, and the request line plus headers.
metrics_connections_max: Final = 8
metrics_request_timeout_ms: Final = 10_000
metrics_header_bytes_max: Final = 16 * 1024
