"""Relations between the named limits of node/core/constants.py."""

from __future__ import annotations

from node.core import constants


def test_solidity_widths() -> None:
    assert constants.uint8_max == 2**8 - 1
    assert constants.uint48_max == 2**48 - 1
    assert constants.uint64_max == 2**64 - 1
    assert constants.uint256_max == 2**256 - 1
    assert constants.uint8_max < constants.uint48_max < constants.uint64_max
    assert constants.uint64_max < constants.uint256_max


def test_nitro_ranges_fit_their_solidity_types() -> None:
    assert constants.channel_nonce_max == constants.uint64_max
    assert constants.turn_num_max == constants.uint48_max
    assert constants.challenge_duration_s_max == constants.uint48_max
    # The chain stores turn numbers and challenge deadlines as uint48 too.
    assert constants.turn_num_max <= constants.uint64_max
    assert constants.asset_type_max == constants.uint8_max


def test_byte_sizes() -> None:
    assert constants.address_bytes == 20
    assert constants.bytes32_bytes == 32
    assert constants.address_bytes + constants.external_destination_prefix_bytes == (
        constants.bytes32_bytes
    )
    assert constants.guarantee_metadata_bytes == 2 * constants.bytes32_bytes
    assert constants.signature_bytes == 2 * constants.bytes32_bytes + 1
    assert constants.private_key_bytes == constants.bytes32_bytes
    assert constants.log_hash_bytes == constants.bytes32_bytes


def test_allocation_types_are_distinct_uint8() -> None:
    assert {constants.allocation_type_simple, constants.allocation_type_guarantee} == {0, 2}
    assert constants.allocation_type_guarantee <= constants.uint8_max


def test_funding_turns() -> None:
    assert constants.prefund_turn_num == 0
    assert constants.postfund_turn_num == constants.prefund_turn_num + 1
    assert constants.postfund_turn_num < constants.turn_num_max


def test_participants_bounds() -> None:
    assert 2 <= constants.participants_min <= constants.participants_max
    # Signatures are addressed by participant index in a uint32 field; indices stay tiny.
    assert constants.participants_max < constants.uint8_max


def test_wire_and_log_limits() -> None:
    assert 0 < constants.message_size_bytes_max <= constants.frame_size_bytes_max
    # An honest frame (below the send target, envelopes of 200 bytes and more) fits.
    assert constants.frame_messages_max * 200 >= constants.p2p_frame_send_bytes_max
    assert constants.log_batch_records_max > 0
    assert constants.wire_format_version >= 1
    assert constants.log_format_version >= 1
    # A maximal signed state must fit in a message: participants, signatures and
    # a generous outcome are far below the limit.
    signed_state_bytes_max = constants.participants_max * (
        constants.address_bytes + constants.signature_bytes + 8
    )
    assert signed_state_bytes_max < constants.message_size_bytes_max


def test_chain_depths() -> None:
    assert constants.chain_confirmations_default == 0  # anvil
    assert constants.chain_confirmations_safe > 0
    # The watcher reads a block `confirmations` deep, then remembers its hash while
    # `chain_reorg_window_blocks` more are processed: a margin well past the depth.
    assert constants.chain_reorg_window_blocks >= 2 * constants.chain_confirmations_safe
    assert 0 not in constants.chain_development_ids


def test_chain_resends() -> None:
    # A replacement must raise its fees by 12.5 % or more (10 % on most nodes).
    assert constants.chain_fee_bump_numerator * 8 >= constants.chain_fee_bump_denominator * 9
    assert constants.chain_resends_max >= 0
    assert 0 < constants.chain_receipt_poll_interval_ms < constants.chain_resend_after_ms
    # A resend happens only when it comes before the receipt timeout.
    assert constants.chain_resend_after_ms < constants.chain_receipt_timeout_ms


def test_derive_store_limits() -> None:
    # The ABI has one exported memory and the host makes one instance per store.
    assert constants.derive_memories_max == 1
    assert constants.derive_instances_max == 1
    assert constants.derive_tables_max >= 1  # the indirect-call table compilers emit
    # A full table (8 bytes an element in wasmtime) is small next to the memory cap.
    assert 0 < constants.derive_table_elements_max * 8 <= constants.derive_memory_bytes_max // 64


def test_rpc_connection_limits() -> None:
    # Unauthenticated connections can never take every slot: most stay for clients with
    # the token, and a request head is due well before the whole request.
    assert constants.rpc_unauthenticated_connections_max > 0
    assert constants.rpc_unauthenticated_connections_max * 2 <= constants.rpc_connections_max
    assert 0 < constants.rpc_header_timeout_ms < constants.rpc_read_timeout_ms
    assert constants.rpc_header_bytes_max < constants.rpc_request_bytes_max


def test_secret_files_hold_a_key_or_a_token() -> None:
    key_file_bytes = 2 * constants.private_key_bytes + len("0x") + len("\n")
    assert key_file_bytes < constants.secret_file_bytes_max
    assert 256 + len("\n") < constants.secret_file_bytes_max  # the longest token accepted
