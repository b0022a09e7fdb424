//! The reference derivation module (ABI version 1, docs/derive-abi.md).
//!
//! It folds scnode LogRecords into per-channel views: the fixed part, the
//! latest state each participant signed, the supported state, holdings per
//! asset, guarantees, voucher totals, a status and what disputes on chain left
//! (the registered challenge's candidate, whether it concluded, reclaims). A
//! bounded undo journal of the most recent chain events lets a BlocksReverted
//! (a reorganisation) undo the events of the blocks it names. Same records in,
//! same bytes out: no clock, no randomness, channels kept sorted by id. A bad
//! record is answered with an error code and a detail message; a trap is a bug.
//! The ABI plumbing (buffers, batch framing, the record header, the snapshot
//! header and the exports) is abi.zig's; this file folds, answers and snapshots,
//! and describes its state as tables (the tables extension): channels, their
//! participants, holdings, the supported outcome's balances and guarantees, totals.

const std = @import("std");
const abi = @import("abi.zig");
const pb = @import("pb.zig");

const gpa = abi.gpa;
const fail = abi.fail;
const nextField = abi.nextField;
const lengthField = abi.lengthField;
const intField = abi.intField;
const writeBadQuery = abi.writeBadQuery;

/// Safety checks stay on (ReleaseSafe); a failed one traps without formatting
/// a message, which keeps the module small.
pub const panic = std.debug.no_panic;

comptime {
    abi.exportAll(@This());
}

pub const options: abi.Options = .{
    .snapshot_magic = "SCDV",
    .snapshot_version = 3,
    .record_what = "record",
    .payload_what = "record.payload",
    .bad_argument_names_record = true,
};

const participants_max = 16;
/// States kept per channel: every participant's latest, the supported one and
/// pending ones above it. Beyond this the lowest-turn unreferenced one goes.
const channel_states_max = 32;
const list_limit_default = 256;
const list_limit_max = 1024;
const turn_num_max: u64 = (1 << 48) - 1;
/// The exit format numbers allocation types simple = 0, withdrawHelper = 1,
/// guarantee = 2; the adjudicator reclaims only type 2 (docs/adr/0004).
const allocation_type_guarantee: u64 = 2;
const none: u8 = 0xff;
/// Chain events the undo journal keeps for BlocksReverted: the most recent ones,
/// whole blocks at a time. A revert can reach back to the oldest block it holds.
const chain_undo_entries_max = 1024;

comptime {
    // Referenced states (latest per participant + supported) must always leave
    // room for eviction.
    std.debug.assert(participants_max + 1 < channel_states_max);
    std.debug.assert(channel_states_max < none);
}

// The event field numbers of log.proto's ChainEvent.
const Event = struct {
    const deposited: u8 = 10;
    const allocation_updated: u8 = 11;
    const concluded: u8 = 12;
    const challenge_registered: u8 = 13;
    const challenge_cleared: u8 = 14;
    const reclaimed: u8 = 15;
    const block_processed: u8 = 16;
    const blocks_reverted: u8 = 17;
};

// ChannelStatus values of derive.proto.
const Status = struct {
    const proposed: u64 = 1;
    const funding: u64 = 2;
    const open: u64 = 3;
    const closing: u64 = 4;
    const finalized: u64 = 5;
    const defunded: u64 = 6;
    const challenged: u64 = 7;
};

const Signature = [65]u8;

const StateEntry = struct {
    hash: [32]u8,
    turn: u64,
    is_final: bool,
    /// The State message bytes as they appeared in the record (owned).
    state: []u8,
    /// Bit i set: participant i's signature is known.
    mask: u16,
    /// participants x 65 bytes (owned); slot i is meaningful when bit i is set.
    signatures: []u8,

    fn signature(entry: *const StateEntry, participant: usize) *const Signature {
        return entry.signatures[participant * 65 ..][0..65];
    }
};

const Holding = struct {
    asset: [20]u8,
    amount: u256,
};

const Channel = struct {
    id: [32]u8,
    key: u256,
    /// FixedPart message bytes (owned); empty until a state is accepted.
    fixed: []u8 = &.{},
    participants: u8 = 0,
    states: std.ArrayList(StateEntry) = .empty,
    latest: [participants_max]u8 = [_]u8{none} ** participants_max,
    supported: u8 = none,
    holdings: std.ArrayList(Holding) = .empty,
    voucher_amount: u256 = 0,
    paid: u256 = 0,
    received: u256 = 0,
    vouchers: u64 = 0,
    finalizes_at: u64 = 0,
    challenged: bool = false,
    concluded: bool = false,
    /// Null while there is nothing to keep (owned).
    dispute: ?*Dispute = null,
    last_seq: u64 = 0,

    fn challenge(channel: *const Channel) ?[]const u8 {
        const dispute = channel.dispute orelse return null;
        return dispute.challenge;
    }

    fn reclaims(channel: *const Channel) u64 {
        const dispute = channel.dispute orelse return 0;
        return dispute.reclaims;
    }
};

/// What disputes on chain leave on a channel. Few channels see one, so it is
/// kept apart: a Channel stays in the allocator's 256-byte size class.
const Dispute = struct {
    /// The candidate SignedState of the registered challenge, the bytes its
    /// ChallengeRegistered record carried (owned); null when there is none.
    /// Set only while the channel is `challenged`.
    challenge: ?[]u8 = null,
    /// Reclaimed events with this channel as the source.
    reclaims: u64 = 0,
};

comptime {
    // The wasm allocator adds a word to each allocation and rounds up to a
    // power of two: one more byte would double the memory of every channel.
    std.debug.assert(@sizeOf(Channel) + @sizeOf(usize) <= 256);
}

/// How to undo one folded chain event: what it changed, as it was before. `kind`
/// is the event's field number (0: none) and says which facts are meaningful:
/// a holding (deposited, allocation_updated), concluded and finalizes_at
/// (concluded), challenged, finalizes_at and the candidate (challenge_registered,
/// challenge_cleared), reclaims (reclaimed); every kind restores chain time.
const Undo = struct {
    block: u64,
    /// The node's chain time before the event.
    chain_time_s: u64,
    kind: u8,
    /// The event created the channel.
    created: bool = false,
    holding_present: bool = false,
    concluded: bool = false,
    challenged: bool = false,
    channel_id: [32]u8 = @splat(0),
    asset: [20]u8 = @splat(0),
    finalizes_at: u64 = 0,
    reclaims: u64 = 0,
    holding: u256 = 0,
    /// The candidate the event replaced (owned), or null.
    challenge: ?[]u8 = null,

    fn namesChannel(undo: *const Undo) bool {
        return undo.kind >= Event.deposited and undo.kind <= Event.reclaimed;
    }
};

/// The most recent chain events, oldest first and in block order, in a ring.
const Journal = struct {
    /// chain_undo_entries_max slots, allocated with the first chain event.
    ring: []Undo = &.{},
    /// The slot of the oldest entry.
    head: u32 = 0,
    count: u32 = 0,
    /// A revert from a block below this one can no longer be undone exactly: the
    /// journal dropped an event of the block before it.
    floor_block: u64 = 0,

    fn at(journal: *const Journal, index: u32) *Undo {
        assert(index < journal.count);
        return &journal.ring[(journal.head + index) % chain_undo_entries_max];
    }

    fn newest(journal: *const Journal) *Undo {
        return journal.at(journal.count - 1);
    }
};

comptime {
    // The snapshot counts entries in a u32, and the ring, allocated whole, must
    // stay a small fixed share of memory.
    std.debug.assert(chain_undo_entries_max > 0);
    std.debug.assert(chain_undo_entries_max <= std.math.maxInt(u32));
    std.debug.assert(@sizeOf(Undo) * chain_undo_entries_max <= 256 * 1024);
    std.debug.assert(Event.deposited < Event.reclaimed);
    std.debug.assert(Event.reclaimed < Event.block_processed);
}

pub const Fold = struct {
    /// Sorted by id, strictly ascending.
    channels: std.ArrayList(*Channel) = .empty,
    vouchers: u64 = 0,
    chain_time_s: u64 = 0,
    journal: Journal = .{},
};

pub var fold: Fold = .{};

// ---------------------------------------------------------------- fields

inline fn fixedBytes(
    comptime size: usize,
    field: pb.Field,
    comptime what: []const u8,
) abi.Error![size]u8 {
    const bytes = try lengthField(field, what);
    if (bytes.len != size) {
        return fail(error.Invalid, what ++ " must be {d} bytes, not {d}", .{ size, bytes.len });
    }
    return bytes[0..size].*;
}

/// Checks a uint256 field without decoding it.
fn amountCheck(field: pb.Field, comptime what: []const u8) abi.Error!void {
    const bytes = try lengthField(field, what);
    if (bytes.len != 0 and bytes.len != 32) {
        return fail(error.Invalid, what ++ " must be 32 bytes, not {d}", .{bytes.len});
    }
}

/// Equal byte strings, compared a word at a time (a byte loop costs more fuel).
fn bytesEqual(a: []const u8, b: []const u8) bool {
    if (a.len != b.len) return false;
    var index: usize = 0;
    while (index + 8 <= a.len) : (index += 8) {
        const left = std.mem.readInt(u64, a[index..][0..8], .little);
        const right = std.mem.readInt(u64, b[index..][0..8], .little);
        if (left != right) return false;
    }
    while (index < a.len) : (index += 1) {
        if (a[index] != b[index]) return false;
    }
    return true;
}

/// A uint256: 32 big-endian bytes, or empty for zero.
fn amountField(field: pb.Field, comptime what: []const u8) abi.Error!u256 {
    const bytes = try lengthField(field, what);
    if (bytes.len == 0) return 0;
    if (bytes.len != 32) {
        return fail(error.Invalid, what ++ " must be 32 bytes, not {d}", .{bytes.len});
    }
    return pb.loadUint256(bytes[0..32]);
}

// ---------------------------------------------------------------- channels

fn channelKey(id: [32]u8) u256 {
    return pb.loadUint256(&id);
}

const Search = struct { found: bool, index: usize };

/// The index of the channel with this key, or where it would be inserted.
fn channelSearch(key: u256) Search {
    return channelSearchIn(fold.channels.items, key);
}

fn channelSearchIn(channels: []const *Channel, key: u256) Search {
    var low: usize = 0;
    var high: usize = channels.len;
    while (low < high) {
        const middle = low + (high - low) / 2;
        const middle_key = channels[middle].key;
        if (middle_key == key) return .{ .found = true, .index = middle };
        if (middle_key < key) low = middle + 1 else high = middle;
    }
    return .{ .found = false, .index = low };
}

fn channelFind(id: [32]u8) ?*Channel {
    const result = channelSearch(channelKey(id));
    return if (result.found) fold.channels.items[result.index] else null;
}

fn channelGetOrCreate(id: [32]u8) abi.Error!*Channel {
    const key = channelKey(id);
    const result = channelSearch(key);
    return channelAt(result.found, result.index, id, key);
}

/// The channel a search found, or a new one inserted where the search ended.
fn channelAt(found: bool, index: usize, id: [32]u8, key: u256) abi.Error!*Channel {
    if (found) return fold.channels.items[index];
    const channel = try gpa.create(Channel);
    channel.* = .{ .id = id, .key = key };
    fold.channels.insert(gpa, index, channel) catch |err| {
        gpa.destroy(channel);
        return err;
    };
    return channel;
}

fn channelFree(channel: *Channel) void {
    if (channel.fixed.len > 0) gpa.free(channel.fixed);
    for (channel.states.items) |entry| {
        gpa.free(entry.state);
        gpa.free(entry.signatures);
    }
    channel.states.deinit(gpa);
    channel.holdings.deinit(gpa);
    disputeFree(channel);
    gpa.destroy(channel);
}

pub fn foldFree(target: *Fold) void {
    for (target.channels.items) |channel| channelFree(channel);
    target.channels.deinit(gpa);
    const journal = &target.journal;
    while (journal.count > 0) journalDropOldest(journal);
    if (journal.ring.len > 0) gpa.free(journal.ring);
    target.* = .{};
}

// ---------------------------------------------------------------- accepted states

/// A parsed AcceptedState; its slices point into the record.
const Accepted = struct {
    channel_id: [32]u8 = undefined,
    state_hash: [32]u8 = undefined,
    state: []const u8 = &.{},
    fixed: []const u8 = &.{},
    participants: u8 = 0,
    turn: u64 = 0,
    is_final: bool = false,
    mask: u16 = 0,
    signatures: [participants_max]*const Signature = undefined,
};

fn parseFixed(bytes: []const u8) abi.Error!u8 {
    var reader = pb.Reader.init(bytes);
    var participants: usize = 0;
    while (try nextField(&reader, "state.fixed")) |field| {
        if (field.number != 1) continue;
        _ = try fixedBytes(20, field, "state.fixed.participants[]");
        participants += 1;
        if (participants > participants_max) {
            return fail(error.Invalid, "state.fixed has more than {d} participants", .{
                participants_max,
            });
        }
    }
    if (participants == 0) return fail(error.Invalid, "state.fixed has no participants", .{});
    return @intCast(participants);
}

fn validateAllocation(bytes: []const u8) abi.Error!void {
    var reader = pb.Reader.init(bytes);
    var destination_length: usize = 0;
    var metadata_length: usize = 0;
    var allocation_type: u64 = 0;
    while (try nextField(&reader, "allocation")) |field| switch (field.number) {
        1 => destination_length = (try lengthField(field, "allocation.destination")).len,
        2 => try amountCheck(field, "allocation.amount"),
        3 => allocation_type = try intField(field, "allocation.allocation_type"),
        4 => metadata_length = (try lengthField(field, "allocation.metadata")).len,
        else => {},
    };
    const guarantee = allocation_type == allocation_type_guarantee;
    if (guarantee and (destination_length != 32 or metadata_length != 64)) {
        return fail(error.Invalid, "guarantee allocation needs a 32-byte destination " ++
            "and 64-byte metadata (left || right)", .{});
    }
}

fn validateOutcome(exit_bytes: []const u8) abi.Error!void {
    var reader = pb.Reader.init(exit_bytes);
    while (try nextField(&reader, "outcome")) |field| {
        if (field.number != 4) continue;
        try validateAllocation(try lengthField(field, "outcome.allocations"));
    }
}

fn parseState(bytes: []const u8, accepted: *Accepted) abi.Error!void {
    var reader = pb.Reader.init(bytes);
    var fixed: ?[]const u8 = null;
    accepted.turn = 0;
    accepted.is_final = false;
    while (try nextField(&reader, "state")) |field| switch (field.number) {
        1 => fixed = try lengthField(field, "state.fixed"),
        3 => try validateOutcome(try lengthField(field, "state.outcome")),
        4 => accepted.turn = try intField(field, "state.turn_num"),
        5 => accepted.is_final = (try intField(field, "state.is_final")) != 0,
        else => {},
    };
    if (accepted.turn > turn_num_max) {
        return fail(error.Invalid, "state.turn_num {d} exceeds 2^48 - 1", .{accepted.turn});
    }
    accepted.fixed = fixed orelse return fail(error.Invalid, "state.fixed is missing", .{});
    accepted.participants = try parseFixed(accepted.fixed);
    accepted.state = bytes;
}

fn parseSignature(bytes: []const u8, accepted: *Accepted) abi.Error!void {
    var reader = pb.Reader.init(bytes);
    var index: u64 = 0;
    var signature: ?*const Signature = null;
    while (try nextField(&reader, "signature")) |field| switch (field.number) {
        1 => index = try intField(field, "signatures[].participant_index"),
        2 => {
            const bytes_signature = try lengthField(field, "signatures[].signature");
            if (bytes_signature.len != 65) {
                return fail(error.Invalid, "signatures[].signature must be 65 bytes, not {d}", .{
                    bytes_signature.len,
                });
            }
            signature = bytes_signature[0..65];
        },
        else => {},
    };
    if (index >= accepted.participants) {
        return fail(error.Invalid, "signatures[].participant_index {d} is not below {d}", .{
            index, accepted.participants,
        });
    }
    const bit = @as(u16, 1) << @intCast(index);
    if (accepted.mask & bit != 0) {
        return fail(error.Invalid, "participant {d} signed twice", .{index});
    }
    accepted.signatures[@intCast(index)] = signature orelse
        return fail(error.Invalid, "signatures[].signature is missing", .{});
    accepted.mask |= bit;
}

fn parseSignedState(bytes: []const u8, accepted: *Accepted) abi.Error!void {
    var state: ?[]const u8 = null;
    var reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "signed_state")) |field| {
        if (field.number == 1) state = try lengthField(field, "signed_state.state");
    }
    const state_bytes = state orelse
        return fail(error.Invalid, "signed_state.state is missing", .{});
    try parseState(state_bytes, accepted);
    accepted.mask = 0;
    reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "signed_state")) |field| {
        if (field.number == 2) {
            try parseSignature(try lengthField(field, "signed_state.signatures"), accepted);
        }
    }
    if (accepted.mask == 0) return fail(error.Invalid, "signed_state has no signatures", .{});
}

fn parseAccepted(bytes: []const u8, accepted: *Accepted) abi.Error!void {
    var reader = pb.Reader.init(bytes);
    var channel_id: ?[32]u8 = null;
    var state_hash: ?[32]u8 = null;
    var signed_state: ?[]const u8 = null;
    while (try nextField(&reader, "accepted_state")) |field| switch (field.number) {
        1 => channel_id = try fixedBytes(32, field, "accepted_state.channel_id"),
        2 => state_hash = try fixedBytes(32, field, "accepted_state.state_hash"),
        3 => signed_state = try lengthField(field, "accepted_state.signed_state"),
        else => {},
    };
    accepted.channel_id = channel_id orelse
        return fail(error.Invalid, "accepted_state.channel_id is missing", .{});
    accepted.state_hash = state_hash orelse
        return fail(error.Invalid, "accepted_state.state_hash is missing", .{});
    try parseSignedState(signed_state orelse
        return fail(error.Invalid, "accepted_state.signed_state is missing", .{}), accepted);
}

fn referenced(channel: *const Channel, index: usize) bool {
    if (channel.supported == index) return true;
    for (channel.latest[0..channel.participants]) |latest| {
        if (latest == index) return true;
    }
    return false;
}

fn stateRemove(channel: *Channel, index: usize) void {
    assert(!referenced(channel, index));
    gpa.free(channel.states.items[index].state);
    gpa.free(channel.states.items[index].signatures);
    _ = channel.states.orderedRemove(index);
    for (channel.latest[0..channel.participants]) |*latest| {
        if (latest.* != none and latest.* > index) latest.* -= 1;
    }
    if (channel.supported != none and channel.supported > index) channel.supported -= 1;
}

/// Drops states nobody needs: unreferenced ones at or below the supported
/// turn, then the lowest-turn unreferenced one while over the bound.
fn statesPrune(channel: *Channel) void {
    if (channel.supported != none) {
        const supported_turn = channel.states.items[channel.supported].turn;
        var index = channel.states.items.len;
        while (index > 0) {
            index -= 1;
            const entry = channel.states.items[index];
            if (entry.turn <= supported_turn and !referenced(channel, index)) {
                stateRemove(channel, index);
            }
        }
    }
    while (channel.states.items.len > channel_states_max) {
        var victim: usize = none;
        for (channel.states.items, 0..) |entry, index| {
            if (referenced(channel, index)) continue;
            if (victim == none or entry.turn < channel.states.items[victim].turn) victim = index;
        }
        assert(victim != none);
        stateRemove(channel, victim);
    }
}

fn stateFind(channel: *const Channel, hash: [32]u8) ?usize {
    // Whole-word comparison: a byte loop costs several times more fuel.
    const wanted: u256 = @bitCast(hash);
    for (channel.states.items, 0..) |entry, index| {
        if (@as(u256, @bitCast(entry.hash)) == wanted) return index;
    }
    return null;
}

fn applyAccepted(bytes: []const u8, seq: u64) abi.Error!void {
    var accepted = Accepted{};
    try parseAccepted(bytes, &accepted);
    const key = channelKey(accepted.channel_id);
    const found = channelSearch(key);
    if (found.found) {
        const existing = fold.channels.items[found.index];
        if (existing.fixed.len > 0 and !bytesEqual(existing.fixed, accepted.fixed)) {
            return fail(error.FixedMismatch, "state.fixed differs from the channel's", .{});
        }
    }
    if (abi.rowsTracked()) {
        try touch(accepted.channel_id, if (found.found) part_row | part_states else part_all);
    }
    const channel = try channelAt(found.found, found.index, accepted.channel_id, key);
    channel.last_seq = seq;
    if (channel.fixed.len == 0) {
        channel.fixed = try gpa.dupe(u8, accepted.fixed);
        channel.participants = accepted.participants;
    }
    assert(channel.participants == accepted.participants);
    const index = stateFind(channel, accepted.state_hash) orelse new: {
        if (channel.supported != none and
            accepted.turn <= channel.states.items[channel.supported].turn) return;
        try channel.states.ensureUnusedCapacity(gpa, 1);
        const state_copy = try gpa.dupe(u8, accepted.state);
        errdefer gpa.free(state_copy);
        const signatures = try gpa.alloc(u8, @as(usize, channel.participants) * 65);
        @memset(signatures, 0);
        channel.states.appendAssumeCapacity(.{
            .hash = accepted.state_hash,
            .turn = accepted.turn,
            .is_final = accepted.is_final,
            .state = state_copy,
            .mask = 0,
            .signatures = signatures,
        });
        break :new channel.states.items.len - 1;
    };
    const entry = &channel.states.items[index];
    for (0..channel.participants) |participant| {
        const bit = @as(u16, 1) << @intCast(participant);
        if (accepted.mask & bit == 0 or entry.mask & bit != 0) continue;
        entry.signatures[participant * 65 ..][0..65].* = accepted.signatures[participant].*;
        entry.mask |= bit;
    }
    statesReference(channel, index);
    statesPrune(channel);
}

fn statesReference(channel: *Channel, index: usize) void {
    const entry = channel.states.items[index];
    for (0..channel.participants) |participant| {
        if (entry.mask & (@as(u16, 1) << @intCast(participant)) == 0) continue;
        const latest = channel.latest[participant];
        if (latest == none or channel.states.items[latest].turn < entry.turn) {
            channel.latest[participant] = @intCast(index);
        }
    }
    const full = (@as(u32, 1) << @intCast(channel.participants)) - 1;
    if (entry.mask == full) {
        if (channel.supported == none or
            channel.states.items[channel.supported].turn < entry.turn)
        {
            channel.supported = @intCast(index);
        }
    }
}

// ---------------------------------------------------------------- chain events and vouchers

fn holdingSet(channel: *Channel, asset: [20]u8, amount: u256) abi.Error!void {
    var index: usize = 0;
    while (index < channel.holdings.items.len) : (index += 1) {
        const order = std.mem.order(u8, &channel.holdings.items[index].asset, &asset);
        if (order == .eq) {
            channel.holdings.items[index].amount = amount;
            return;
        }
        if (order == .gt) break;
    }
    try channel.holdings.insert(gpa, index, .{ .asset = asset, .amount = amount });
}

const ChainChange = struct {
    channel_id: ?[32]u8 = null,
    asset: ?[20]u8 = null,
    amount: u256 = 0,
    finalizes_at: u64 = 0,
    /// A challenge's candidate SignedState, well-formed; it points into the record.
    candidate: ?[]const u8 = null,
};

/// Which fields of a protobuf message hold nested messages.
const Shape = struct {
    what: []const u8,
    nested: []const Nested = &.{},
};

const Nested = struct { number: u32, shape: *const Shape };

const allocation_shape: Shape = .{ .what = "candidate.state.outcome.allocations" };
const exit_shape: Shape = .{
    .what = "candidate.state.outcome",
    .nested = &.{.{ .number = 4, .shape = &allocation_shape }},
};
const fixed_shape: Shape = .{ .what = "candidate.state.fixed" };
const state_shape: Shape = .{
    .what = "candidate.state",
    .nested = &.{
        .{ .number = 1, .shape = &fixed_shape },
        .{ .number = 3, .shape = &exit_shape },
    },
};
const signature_shape: Shape = .{ .what = "candidate.signatures" };
/// A SignedState (nitro.proto).
const candidate_shape: Shape = .{
    .what = "challenge_registered.candidate",
    .nested = &.{
        .{ .number = 1, .shape = &state_shape },
        .{ .number = 2, .shape = &signature_shape },
    },
};
/// SignedState, State, SingleAssetExit, Allocation.
const shape_depth_max = 4;

/// Checks that `bytes` decode as a message of this shape, nested messages
/// included, as a protobuf decoder reads them: a field of a nested message's
/// number but another wire type is an unknown field to a decoder, so it is
/// skipped. Nothing else is checked: the module re-emits these bytes and never
/// reads them.
fn wellFormed(shape: *const Shape, bytes: []const u8, depth: u32) abi.Error!void {
    assert(depth < shape_depth_max);
    var reader = pb.Reader.init(bytes);
    while (reader.next() catch
        return fail(error.Malformed, "{s}: malformed protobuf", .{shape.what})) |field|
    {
        if (field.wire_type != pb.WireType.length_delimited) continue;
        for (shape.nested) |nested| {
            if (field.number == nested.number) {
                try wellFormed(nested.shape, field.bytes, depth + 1);
            }
        }
    }
}

fn parseChannelEvent(
    bytes: []const u8,
    comptime asset_field: u32,
    comptime amount_field: u32,
    comptime finalizes_field: u32,
    // Not comptime: Concluded and ChallengeRegistered share one copy of the code.
    candidate_field: u32,
) abi.Error!ChainChange {
    var change = ChainChange{};
    var reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "chain_event")) |field| {
        if (field.number == 1) {
            change.channel_id = try fixedBytes(32, field, "chain_event.channel_id");
        } else if (field.number == asset_field) {
            change.asset = try fixedBytes(20, field, "chain_event.asset");
        } else if (field.number == amount_field) {
            change.amount = try amountField(field, "chain_event.holdings");
        } else if (field.number == finalizes_field) {
            change.finalizes_at = try intField(field, "chain_event.finalizes_at");
        } else if (field.number == candidate_field and
            field.wire_type == pb.WireType.length_delimited)
        {
            // Of another wire type it is an unknown field, as wellFormed reads.
            try wellFormed(&candidate_shape, field.bytes, 0);
            change.candidate = field.bytes;
        }
    }
    if (change.channel_id == null) {
        return fail(error.Invalid, "chain_event.channel_id is missing", .{});
    }
    if (asset_field != 0 and change.asset == null) {
        return fail(error.Invalid, "chain_event.asset is missing", .{});
    }
    return change;
}

fn applyChainEvent(bytes: []const u8, seq: u64) abi.Error!void {
    var block: u64 = 0;
    var block_time_s: u64 = 0;
    var event: ?pb.Field = null;
    var reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "chain_event")) |field| switch (field.number) {
        1 => block = try intField(field, "chain_event.block_number"),
        4 => block_time_s = try intField(field, "chain_event.block_time_s"),
        Event.deposited...Event.blocks_reverted => {
            _ = try lengthField(field, "chain_event.event");
            event = field;
        },
        else => {},
    };
    const kind: u8 = if (event) |field| @intCast(field.number) else 0;
    if (kind == Event.blocks_reverted) return revert(try parseReverted(event.?.bytes), seq);
    // Validate the whole event before changing anything.
    const payload: []const u8 = if (event) |field| field.bytes else &.{};
    const change: ChainChange = switch (kind) {
        Event.deposited => try parseChannelEvent(payload, 2, 3, 0, 0),
        Event.allocation_updated => try parseChannelEvent(payload, 3, 5, 0, 0),
        Event.concluded => try parseChannelEvent(payload, 0, 0, 2, 0),
        Event.challenge_registered => try parseChannelEvent(payload, 0, 0, 2, 3),
        Event.challenge_cleared, Event.reclaimed => try parseChannelEvent(payload, 0, 0, 0, 0),
        else => .{},
    };
    try journalReserve(&fold.journal);
    var undo: Undo = .{ .block = block, .chain_time_s = fold.chain_time_s, .kind = kind };
    assert((change.channel_id != null) == undo.namesChannel());
    if (change.channel_id != null) try applyChannelEvent(&undo, change, seq);
    if (block_time_s > fold.chain_time_s) chain_time_changed = true;
    fold.chain_time_s = @max(fold.chain_time_s, block_time_s);
    journalPush(&fold.journal, undo);
}

/// Applies an event that names a channel, recording in `undo` what it changes.
fn applyChannelEvent(undo: *Undo, change: ChainChange, seq: u64) abi.Error!void {
    // Copied before the channel changes, so running out of memory changes nothing.
    const candidate: ?[]u8 = if (change.candidate) |given| try gpa.dupe(u8, given) else null;
    errdefer if (candidate) |owned| gpa.free(owned);
    const key = channelKey(change.channel_id.?);
    const found = channelSearch(key);
    if (abi.rowsTracked()) {
        const holding = undo.kind == Event.deposited or undo.kind == Event.allocation_updated;
        const changed = if (holding) part_row | part_holdings else part_row;
        try touch(change.channel_id.?, if (found.found) changed else part_all);
    }
    const channel = try channelAt(found.found, found.index, change.channel_id.?, key);
    channel.last_seq = seq;
    undo.channel_id = channel.id;
    undo.created = !found.found;
    switch (undo.kind) {
        Event.deposited, Event.allocation_updated => {
            undo.asset = change.asset.?;
            if (holdingFind(channel, undo.asset)) |index| {
                undo.holding_present = true;
                undo.holding = channel.holdings.items[index].amount;
            }
            try holdingSet(channel, change.asset.?, change.amount);
        },
        Event.concluded => {
            undo.concluded = channel.concluded;
            undo.finalizes_at = channel.finalizes_at;
            channel.concluded = true;
            channel.finalizes_at = change.finalizes_at;
        },
        Event.challenge_registered, Event.challenge_cleared => {
            undo.challenged = channel.challenged;
            undo.finalizes_at = channel.finalizes_at;
            const registered = undo.kind == Event.challenge_registered;
            undo.challenge = try challengeSwap(channel, if (registered) candidate else null);
            channel.challenged = registered;
            if (registered) {
                channel.finalizes_at = change.finalizes_at;
            } else if (!channel.concluded) {
                channel.finalizes_at = 0;
            }
        },
        Event.reclaimed => {
            undo.reclaims = channel.reclaims();
            (try disputeGet(channel)).reclaims += 1;
        },
        else => unreachable,
    }
    assert(channel.challenge() == null or channel.challenged);
}

/// The channel's Dispute, allocated if it has none.
fn disputeGet(channel: *Channel) abi.Error!*Dispute {
    if (channel.dispute) |dispute| return dispute;
    const dispute = try gpa.create(Dispute);
    dispute.* = .{};
    channel.dispute = dispute;
    return dispute;
}

fn disputeFree(channel: *Channel) void {
    const dispute = channel.dispute orelse return;
    if (dispute.challenge) |candidate| gpa.free(candidate);
    gpa.destroy(dispute);
    channel.dispute = null;
}

/// Makes `candidate` (owned, or null) the registered challenge's candidate and
/// returns the one it replaces, which the caller then owns.
fn challengeSwap(channel: *Channel, candidate: ?[]u8) abi.Error!?[]u8 {
    if (candidate == null and channel.dispute == null) return null;
    const dispute = try disputeGet(channel);
    const previous = dispute.challenge;
    dispute.challenge = candidate;
    if (dispute.challenge == null and dispute.reclaims == 0) disputeFree(channel);
    return previous;
}

fn reclaimsSet(channel: *Channel, reclaims: u64) abi.Error!void {
    if (reclaims == 0 and channel.dispute == null) return;
    const dispute = try disputeGet(channel);
    dispute.reclaims = reclaims;
    if (dispute.challenge == null and dispute.reclaims == 0) disputeFree(channel);
}

fn holdingFind(channel: *const Channel, asset: [20]u8) ?usize {
    for (channel.holdings.items, 0..) |holding, index| {
        if (std.mem.eql(u8, &holding.asset, &asset)) return index;
    }
    return null;
}

// ---------------------------------------------------------------- reorganisations

fn journalReserve(journal: *Journal) error{OutOfMemory}!void {
    if (journal.ring.len > 0) return;
    journal.ring = try gpa.alloc(Undo, chain_undo_entries_max);
}

fn journalDropOldest(journal: *Journal) void {
    const oldest = journal.at(0);
    if (oldest.challenge) |candidate| gpa.free(candidate);
    oldest.challenge = null;
    journal.head = (journal.head + 1) % chain_undo_entries_max;
    journal.count -= 1;
}

/// Journals a folded chain event (taking its candidate): whole blocks, in block order,
/// at most chain_undo_entries_max events.
fn journalPush(journal: *Journal, undo: Undo) void {
    assert(journal.ring.len == chain_undo_entries_max);
    if (journal.count > 0 and undo.block < journal.newest().block) {
        // Out of block order (a watcher never logs that): undoing the newer blocks
        // alone would no longer be exact, so they can no longer be reverted.
        assert(journal.floor_block <= journal.newest().block);
        journal.floor_block = journal.newest().block + 1;
        while (journal.count > 0) journalDropOldest(journal);
    }
    if (journal.count == chain_undo_entries_max) {
        const oldest = journal.at(0).block;
        while (journal.count > 0 and journal.at(0).block == oldest) journalDropOldest(journal);
        assert(journal.floor_block <= oldest);
        journal.floor_block = oldest + 1;
    }
    if (undo.block < journal.floor_block) {
        if (undo.challenge) |candidate| gpa.free(candidate);
        return;
    }
    assert(journal.count < chain_undo_entries_max);
    journal.ring[(journal.head + journal.count) % chain_undo_entries_max] = undo;
    journal.count += 1;
}

fn parseReverted(bytes: []const u8) abi.Error!u64 {
    var first_block: u64 = 0;
    var reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "blocks_reverted")) |field| {
        if (field.number == 1) first_block = try intField(field, "blocks_reverted.first_block");
    }
    return first_block;
}

/// Undoes every chain event folded from a block at or after `first_block`, newest
/// first, as if it had never been folded.
fn revert(first_block: u64, seq: u64) abi.Error!void {
    const journal = &fold.journal;
    if (first_block < journal.floor_block) {
        return fail(error.RevertTooDeep, "blocks_reverted.first_block {d} is below block {d}, " ++
            "the oldest the undo journal can revert", .{ first_block, journal.floor_block });
    }
    while (journal.count > 0 and journal.newest().block >= first_block) {
        var undo = journal.newest().*;
        journal.newest().challenge = null;
        journal.count -= 1;
        errdefer if (undo.challenge) |candidate| gpa.free(candidate);
        try undoApply(&undo, seq);
    }
    assert(journal.count == 0 or journal.newest().block < first_block);
}

/// Restores what one chain event changed (taking `undo.challenge`). A channel that
/// the event created goes with it unless a state or a voucher names it too; one
/// that stays records the revert's seq as its last_seq.
fn undoApply(undo: *Undo, seq: u64) abi.Error!void {
    if (undo.chain_time_s != fold.chain_time_s) chain_time_changed = true;
    fold.chain_time_s = undo.chain_time_s;
    if (!undo.namesChannel()) return;
    if (abi.rowsTracked()) try touch(undo.channel_id, part_all);
    const found = channelSearch(channelKey(undo.channel_id));
    assert(found.found);
    const channel = fold.channels.items[found.index];
    switch (undo.kind) {
        Event.deposited, Event.allocation_updated => {
            if (undo.holding_present) {
                try holdingSet(channel, undo.asset, undo.holding);
            } else if (holdingFind(channel, undo.asset)) |index| {
                _ = channel.holdings.orderedRemove(index);
            }
        },
        Event.concluded => {
            channel.concluded = undo.concluded;
            channel.finalizes_at = undo.finalizes_at;
        },
        Event.challenge_registered, Event.challenge_cleared => {
            const replaced = try challengeSwap(channel, undo.challenge);
            undo.challenge = null;
            if (replaced) |candidate| gpa.free(candidate);
            channel.challenged = undo.challenged;
            channel.finalizes_at = undo.finalizes_at;
        },
        Event.reclaimed => try reclaimsSet(channel, undo.reclaims),
        else => unreachable,
    }
    assert(channel.challenge() == null or channel.challenged);
    if (undo.created and channel.fixed.len == 0 and channel.vouchers == 0) {
        _ = fold.channels.orderedRemove(found.index);
        channelFree(channel);
    } else {
        channel.last_seq = seq;
    }
}

fn applyVoucher(bytes: []const u8, seq: u64) abi.Error!void {
    var voucher: ?[]const u8 = null;
    var sent = false;
    var reader = pb.Reader.init(bytes);
    while (try nextField(&reader, "accepted_voucher")) |field| switch (field.number) {
        1 => voucher = try lengthField(field, "accepted_voucher.voucher"),
        2 => sent = (try intField(field, "accepted_voucher.sent")) != 0,
        else => {},
    };
    var channel_id: ?[32]u8 = null;
    var amount: u256 = 0;
    reader = pb.Reader.init(voucher orelse
        return fail(error.Invalid, "accepted_voucher.voucher is missing", .{}));
    while (try nextField(&reader, "voucher")) |field| switch (field.number) {
        1 => channel_id = try fixedBytes(32, field, "voucher.channel_id"),
        2 => amount = try amountField(field, "voucher.amount"),
        else => {},
    };
    const id = channel_id orelse return fail(error.Invalid, "voucher.channel_id is missing", .{});
    if (abi.rowsTracked()) try touch(id, if (channelFind(id) != null) part_row else part_all);
    const channel = try channelGetOrCreate(id);
    channel.last_seq = seq;
    channel.vouchers += 1;
    fold.vouchers += 1;
    channel.voucher_amount = @max(channel.voucher_amount, amount);
    if (sent) {
        channel.paid = @max(channel.paid, amount);
    } else {
        channel.received = @max(channel.received, amount);
    }
}

// ---------------------------------------------------------------- records

/// Folds accepted states, chain events and vouchers; other records only
/// advance the cursor.
pub fn applyPayload(payload: pb.Field, seq: u64) abi.Error!void {
    switch (payload.number) {
        10 => try applyAccepted(payload.bytes, seq),
        11 => try applyChainEvent(payload.bytes, seq),
        17 => try applyVoucher(payload.bytes, seq),
        else => {},
    }
}

// ---------------------------------------------------------------- views

fn channelStatus(channel: *const Channel) u64 {
    const supported: ?StateEntry = if (channel.supported != none)
        channel.states.items[channel.supported]
    else
        null;
    const expired = channel.challenged and fold.chain_time_s >= channel.finalizes_at;
    const finalized = channel.concluded or expired or (supported != null and supported.?.is_final);
    if (finalized) {
        if (channel.holdings.items.len == 0) return Status.finalized;
        for (channel.holdings.items) |holding| {
            if (holding.amount != 0) return Status.finalized;
        }
        return Status.defunded;
    }
    if (channel.challenged) return Status.challenged;
    for (channel.latest[0..channel.participants]) |latest| {
        if (latest != none and channel.states.items[latest].is_final) return Status.closing;
    }
    if (supported) |entry| return if (entry.turn >= 1) Status.open else Status.funding;
    return Status.proposed;
}

fn writeSignedState(
    writer: pb.Writer,
    number: u32,
    entry: *const StateEntry,
    participants: u8,
) !void {
    const start = try writer.begin(number);
    try writer.bytes(1, entry.state);
    for (0..participants) |participant| {
        if (entry.mask & (@as(u16, 1) << @intCast(participant)) == 0) continue;
        const signature_start = try writer.begin(2);
        try writer.uint(1, participant);
        try writer.bytes(2, entry.signature(participant));
        try writer.end(signature_start);
    }
    try writer.end(start);
}

/// Guarantees: allocations of type 2 (guarantee) in the supported outcome.
fn writeGuarantees(writer: pb.Writer, state: []const u8) !void {
    var state_reader = pb.Reader.init(state);
    while (state_reader.next() catch unreachable) |exit_field| {
        if (exit_field.number != 3) continue;
        var exit_reader = pb.Reader.init(exit_field.bytes);
        while (exit_reader.next() catch unreachable) |allocation_field| {
            if (allocation_field.number != 4) continue;
            var destination: []const u8 = &.{};
            var amount: []const u8 = &.{};
            var metadata: []const u8 = &.{};
            var allocation_type: u64 = 0;
            var reader = pb.Reader.init(allocation_field.bytes);
            while (reader.next() catch unreachable) |field| switch (field.number) {
                1 => destination = field.bytes,
                2 => amount = field.bytes,
                3 => allocation_type = field.int,
                4 => metadata = field.bytes,
                else => {},
            };
            if (allocation_type != allocation_type_guarantee) continue;
            assert(metadata.len == 64);
            const start = try writer.begin(7);
            try writer.bytes(1, destination);
            try writer.uint256(2, if (amount.len == 0) 0 else pb.loadUint256(amount[0..32]));
            try writer.bytes(3, metadata[0..32]);
            try writer.bytes(4, metadata[32..64]);
            try writer.end(start);
        }
    }
}

fn writeHolding(writer: pb.Writer, number: u32, holding: Holding) !void {
    const start = try writer.begin(number);
    try writer.bytes(1, &holding.asset);
    try writer.uint256(2, holding.amount);
    try writer.end(start);
}

fn writeChannel(writer: pb.Writer, number: u32, channel: *const Channel) !void {
    const start = try writer.begin(number);
    try writer.bytes(1, &channel.id);
    if (channel.fixed.len > 0) try writer.bytes(2, channel.fixed);
    try writer.uint(3, channelStatus(channel));
    for (channel.latest[0..channel.participants]) |latest| {
        if (latest == none) {
            try writer.bytes(4, &.{});
        } else {
            try writeSignedState(writer, 4, &channel.states.items[latest], channel.participants);
        }
    }
    if (channel.supported != none) {
        const supported = &channel.states.items[channel.supported];
        try writeSignedState(writer, 5, supported, channel.participants);
    }
    for (channel.holdings.items) |holding| try writeHolding(writer, 6, holding);
    if (channel.supported != none) {
        try writeGuarantees(writer, channel.states.items[channel.supported].state);
    }
    try writer.uint256(8, channel.voucher_amount);
    try writer.uint256(9, channel.paid);
    try writer.uint(10, channel.finalizes_at);
    try writer.uint(11, channel.last_seq);
    try writer.uint256(12, channel.received);
    try writer.uint(13, channel.vouchers);
    if (channel.challenge()) |candidate| try writer.bytes(14, candidate);
    try writer.uint(15, @intFromBool(channel.concluded));
    try writer.uint(16, channel.reclaims());
    try writer.end(start);
}

fn writeTotals(writer: pb.Writer) !void {
    var sums: std.ArrayList(Holding) = .empty;
    defer sums.deinit(gpa);
    var open: u64 = 0;
    for (fold.channels.items) |channel| {
        if (channelStatus(channel) == Status.open) open += 1;
        for (channel.holdings.items) |holding| {
            var index: usize = 0;
            while (index < sums.items.len and
                std.mem.order(u8, &sums.items[index].asset, &holding.asset) == .lt) index += 1;
            const same = index < sums.items.len and
                std.mem.eql(u8, &sums.items[index].asset, &holding.asset);
            if (same) {
                sums.items[index].amount +|= holding.amount;
            } else {
                try sums.insert(gpa, index, holding);
            }
        }
    }
    const start = try writer.begin(12);
    try writer.uint(1, abi.folded.records);
    try writer.uint(2, fold.channels.items.len);
    try writer.uint(3, open);
    try writer.uint(4, fold.vouchers);
    for (sums.items) |sum| try writeHolding(writer, 5, sum);
    try writer.uint(6, abi.folded.cursor);
    try writer.end(start);
}

fn writeList(writer: pb.Writer, after: []const u8, limit_asked: u64) !void {
    const limit: usize = if (limit_asked == 0)
        list_limit_default
    else
        @min(limit_asked, list_limit_max);
    var first: usize = 0;
    if (after.len == 32) {
        const result = channelSearch(channelKey(after[0..32].*));
        first = if (result.found) result.index + 1 else result.index;
    }
    const last = @min(fold.channels.items.len, first + limit);
    const start = try writer.begin(11);
    for (fold.channels.items[first..last]) |channel| try writeChannel(writer, 1, channel);
    if (last < fold.channels.items.len) try writer.bytes(2, &fold.channels.items[last - 1].id);
    try writer.end(start);
}

pub fn answer(writer: pb.Writer, query_bytes: []const u8) error{OutOfMemory}!void {
    var reader = pb.Reader.init(query_bytes);
    var kind: ?pb.Field = null;
    while (reader.next() catch return writeBadQuery(writer, "query: malformed protobuf")) |field| {
        const delimited = field.wire_type == pb.WireType.length_delimited;
        if (field.number >= 1 and field.number <= 4 and delimited) {
            kind = field;
        }
    }
    const request = kind orelse return writeBadQuery(writer, "query: no query this module answers");
    var channel_id: []const u8 = &.{};
    var limit: u64 = 0;
    var fields = pb.Reader.init(request.bytes);
    while (fields.next() catch return writeBadQuery(writer, "query: malformed protobuf")) |field| {
        const delimited = field.wire_type == pb.WireType.length_delimited;
        if (field.number == 1 and delimited) channel_id = field.bytes;
        if (field.number == 2 and field.wire_type == pb.WireType.varint) limit = field.int;
    }
    switch (request.number) {
        1 => {
            if (channel_id.len != 32) {
                return writeBadQuery(writer, "get_channel.channel_id must be 32 bytes");
            }
            const channel = channelFind(channel_id[0..32].*) orelse {
                try writer.uint(1, abi.QueryStatus.not_found);
                try writer.bytes(2, "no such channel");
                return;
            };
            try writeChannel(writer, 10, channel);
        },
        2 => {
            if (channel_id.len != 0 and channel_id.len != 32) {
                return writeBadQuery(writer, "list_channels.after must be empty or 32 bytes");
            }
            try writeList(writer, channel_id, limit);
        },
        3 => try writeTotals(writer),
        4 => try abi.writeCursor(writer),
        else => unreachable,
    }
}

// ---------------------------------------------------------------- tables

pub const tables = [_]abi.Table{
    .{
        .name = "channels",
        .description = "one row per channel: its fixed part, status, supported turn, " ++
            "vouchers and disputes",
        .primary_key = &.{0},
        .columns = &.{
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "status", .type = .text, .description = "proposed, funding, open, " ++
                "closing, finalized, defunded or challenged" },
            .{ .name = "participants", .type = .integer, .description = "0: no state yet" },
            .{ .name = "channel_nonce", .type = .uint256 },
            .{ .name = "app_definition", .type = .hex },
            .{ .name = "challenge_duration", .type = .integer, .description = "seconds" },
            .{ .name = "turn_num", .type = .integer, .description = "the supported state's" },
            .{ .name = "voucher_amount", .type = .uint256, .description = "highest voucher" },
            .{ .name = "paid", .type = .uint256, .description = "highest voucher we sent" },
            .{ .name = "received", .type = .uint256, .description = "highest we received" },
            .{ .name = "vouchers", .type = .integer },
            .{ .name = "finalizes_at", .type = .integer, .description = "unix seconds; 0: none" },
            .{ .name = "challenge_turn_num", .type = .integer, .description = "the turn of " ++
                "the registered challenge's candidate" },
            .{ .name = "concluded", .type = .boolean },
            .{ .name = "reclaims", .type = .integer },
            .{ .name = "last_seq", .type = .integer, .description = "the last record " ++
                "that changed the channel" },
        },
    },
    .{
        .name = "participants",
        .description = "each channel's participants and the turn each last signed",
        .primary_key = &.{ 0, 1 },
        .columns = &.{
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "idx", .type = .integer, .description = "participant index" },
            .{ .name = "address", .type = .hex },
            .{ .name = "latest_turn_num", .type = .integer, .description = "NULL: none signed" },
        },
    },
    .{
        .name = "holdings",
        .description = "what the adjudicator holds for each channel, per asset",
        .primary_key = &.{ 0, 1 },
        .columns = &.{
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "asset", .type = .hex, .description = "0x00..00: the native coin" },
            .{ .name = "amount", .type = .uint256 },
        },
    },
    .{
        .name = "balances",
        .description = "the supported state's outcome: each allocation, per asset",
        .primary_key = &.{ 0, 1, 2 },
        .columns = &.{
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "asset_index", .type = .integer },
            .{ .name = "idx", .type = .integer, .description = "allocation index" },
            .{ .name = "asset", .type = .hex },
            .{ .name = "destination", .type = .hex },
            .{ .name = "amount", .type = .uint256 },
            .{ .name = "allocation_type", .type = .integer, .description = "2: guarantee" },
        },
    },
    .{
        .name = "guarantees",
        .description = "guarantees (allocation type 2) in the supported outcome",
        .primary_key = &.{ 0, 1, 2 },
        .columns = &.{
            .{ .name = "channel_id", .type = .hex, .description = "the ledger channel" },
            .{ .name = "asset_index", .type = .integer },
            .{ .name = "idx", .type = .integer, .description = "allocation index" },
            .{ .name = "asset", .type = .hex },
            .{ .name = "target", .type = .hex, .description = "the guaranteed channel" },
            .{ .name = "amount", .type = .uint256 },
            .{ .name = "left", .type = .hex },
            .{ .name = "right", .type = .hex },
        },
    },
    .{
        .name = "totals",
        .description = "one row: records folded, the cursor, vouchers, chain time",
        .primary_key = &.{0},
        .columns = &.{
            .{ .name = "id", .type = .integer, .description = "always 1" },
            .{ .name = "records", .type = .integer },
            .{ .name = "last_seq", .type = .integer },
            .{ .name = "vouchers", .type = .integer },
            .{ .name = "chain_time_s", .type = .integer },
        },
    },
};

const Tables = struct {
    const channels: u32 = 0;
    const participants: u32 = 1;
    const holdings: u32 = 2;
    const balances: u32 = 3;
    const guarantees: u32 = 4;
    const totals: u32 = 5;
};

/// Which rows of a channel changed: its channels row, those that follow its states
/// (participants, balances, guarantees), its holdings.
const part_row: u8 = 1;
const part_states: u8 = 2;
const part_holdings: u8 = 4;
const part_all: u8 = part_row | part_states | part_holdings;

const Dirty = struct { id: [32]u8, parts: u8 };

/// Channels changed since the last RowChanges (while rows are tracked); may repeat.
var dirty: std.ArrayList(Dirty) = .empty;
/// Chain time moved: the status of a challenged channel may have changed.
var chain_time_changed: bool = false;

fn touch(id: [32]u8, parts: u8) error{OutOfMemory}!void {
    try dirty.append(gpa, .{ .id = id, .parts = parts });
}

pub fn rowsForget() void {
    dirty.clearRetainingCapacity();
    chain_time_changed = false;
}

fn lessDirty(_: void, a: Dirty, b: Dirty) bool {
    return std.mem.order(u8, &a.id, &b.id) == .lt;
}

fn statusName(status: u64) []const u8 {
    return switch (status) {
        Status.proposed => "proposed",
        Status.funding => "funding",
        Status.open => "open",
        Status.closing => "closing",
        Status.finalized => "finalized",
        Status.defunded => "defunded",
        Status.challenged => "challenged",
        else => unreachable,
    };
}

/// The fixed part's scalars, as a protobuf decoder reads them (the last of a
/// repeated field wins; a field of another wire type is unknown, so absent).
const FixedFacts = struct { nonce: u64 = 0, app: []const u8 = &.{}, duration: u64 = 0 };

fn fixedFacts(fixed: []const u8) FixedFacts {
    var facts = FixedFacts{};
    var reader = pb.Reader.init(fixed);
    while (reader.next() catch unreachable) |field| {
        const varint = field.wire_type == pb.WireType.varint;
        const delimited = field.wire_type == pb.WireType.length_delimited;
        switch (field.number) {
            2 => if (varint) {
                facts.nonce = field.int;
            },
            3 => if (delimited) {
                facts.app = field.bytes;
            },
            4 => if (varint) {
                facts.duration = field.int;
            },
            else => {},
        }
    }
    return facts;
}

/// The turn of a SignedState's state (0 when absent).
fn signedTurn(signed: []const u8) u64 {
    var turn: u64 = 0;
    var reader = pb.Reader.init(signed);
    while (reader.next() catch unreachable) |field| {
        if (field.number != 1 or field.wire_type != pb.WireType.length_delimited) continue;
        var state = pb.Reader.init(field.bytes);
        while (state.next() catch unreachable) |state_field| {
            if (state_field.number == 4 and state_field.wire_type == pb.WireType.varint) {
                turn = state_field.int;
            }
        }
    }
    return turn;
}

fn channelRow(writer: pb.Writer, channel: *const Channel) !void {
    var row = try abi.Row.begin(writer, Tables.channels, false);
    try row.blob(&channel.id);
    try row.text(statusName(channelStatus(channel)));
    try row.uint(channel.participants);
    if (channel.fixed.len > 0) {
        const facts = fixedFacts(channel.fixed);
        try row.amount(facts.nonce);
        try row.blob(facts.app);
        try row.uint(facts.duration);
    } else {
        for (0..3) |_| try row.none();
    }
    if (channel.supported != none) {
        try row.uint(channel.states.items[channel.supported].turn);
    } else {
        try row.none();
    }
    try row.amount(channel.voucher_amount);
    try row.amount(channel.paid);
    try row.amount(channel.received);
    try row.uint(channel.vouchers);
    try row.uint(channel.finalizes_at);
    if (channel.challenge()) |candidate| try row.uint(signedTurn(candidate)) else try row.none();
    try row.flag(channel.concluded);
    try row.uint(channel.reclaims());
    try row.uint(channel.last_seq);
    try row.end();
}

fn participantRows(writer: pb.Writer, channel: *const Channel) !void {
    var reader = pb.Reader.init(channel.fixed);
    var index: u8 = 0;
    while (reader.next() catch unreachable) |field| {
        if (field.number != 1) continue;
        var row = try abi.Row.begin(writer, Tables.participants, false);
        try row.blob(&channel.id);
        try row.uint(index);
        try row.blob(field.bytes);
        const latest = channel.latest[index];
        if (latest != none) try row.uint(channel.states.items[latest].turn) else try row.none();
        try row.end();
        index += 1;
    }
    assert(index == channel.participants);
}

/// Balances and guarantees: the allocations of the supported state's outcome.
fn outcomeRows(writer: pb.Writer, channel: *const Channel) !void {
    if (channel.supported == none) return;
    var state_reader = pb.Reader.init(channel.states.items[channel.supported].state);
    var asset_index: u64 = 0;
    while (state_reader.next() catch unreachable) |exit_field| {
        if (exit_field.number != 3) continue;
        var asset: []const u8 = &.{};
        var exit_reader = pb.Reader.init(exit_field.bytes);
        while (exit_reader.next() catch unreachable) |field| {
            if (field.number == 1 and field.wire_type == pb.WireType.length_delimited) {
                asset = field.bytes;
            }
        }
        exit_reader = pb.Reader.init(exit_field.bytes);
        var index: u64 = 0;
        while (exit_reader.next() catch unreachable) |allocation_field| {
            if (allocation_field.number != 4) continue;
            try allocationRows(writer, channel, asset_index, index, asset, allocation_field.bytes);
            index += 1;
        }
        asset_index += 1;
    }
}

fn allocationRows(
    writer: pb.Writer,
    channel: *const Channel,
    asset_index: u64,
    index: u64,
    asset: []const u8,
    allocation: []const u8,
) !void {
    var destination: []const u8 = &.{};
    var amount: u256 = 0;
    var metadata: []const u8 = &.{};
    var allocation_type: u64 = 0;
    var reader = pb.Reader.init(allocation);
    while (reader.next() catch unreachable) |field| switch (field.number) {
        1 => destination = field.bytes,
        2 => amount = if (field.bytes.len == 0) 0 else pb.loadUint256(field.bytes[0..32]),
        3 => allocation_type = field.int,
        4 => metadata = field.bytes,
        else => {},
    };
    var row = try abi.Row.begin(writer, Tables.balances, false);
    try row.blob(&channel.id);
    try row.uint(asset_index);
    try row.uint(index);
    try row.blob(asset);
    try row.blob(destination);
    try row.amount(amount);
    try row.uint(allocation_type);
    try row.end();
    if (allocation_type != allocation_type_guarantee) return;
    assert(metadata.len == 64);
    var guarantee = try abi.Row.begin(writer, Tables.guarantees, false);
    try guarantee.blob(&channel.id);
    try guarantee.uint(asset_index);
    try guarantee.uint(index);
    try guarantee.blob(asset);
    try guarantee.blob(destination);
    try guarantee.amount(amount);
    try guarantee.blob(metadata[0..32]);
    try guarantee.blob(metadata[32..64]);
    try guarantee.end();
}

fn holdingRows(writer: pb.Writer, channel: *const Channel) !void {
    for (channel.holdings.items) |holding| {
        var row = try abi.Row.begin(writer, Tables.holdings, false);
        try row.blob(&channel.id);
        try row.blob(&holding.asset);
        try row.amount(holding.amount);
        try row.end();
    }
}

/// Deletes the rows of `tables_of` whose key starts with the channel id.
fn deleteRows(writer: pb.Writer, id: *const [32]u8, tables_of: []const u32) !void {
    for (tables_of) |table| {
        var row = try abi.Row.begin(writer, table, true);
        try row.blob(id);
        try row.end();
    }
}

/// The rows of `parts` of a channel; `replace`: delete its old child rows first.
fn channelRows(writer: pb.Writer, channel: *const Channel, parts: u8, replace: bool) !void {
    if (parts & part_row != 0) try channelRow(writer, channel);
    if (parts & part_states != 0) {
        if (replace) {
            const children = [_]u32{ Tables.participants, Tables.balances, Tables.guarantees };
            try deleteRows(writer, &channel.id, &children);
        }
        try participantRows(writer, channel);
        try outcomeRows(writer, channel);
    }
    if (parts & part_holdings != 0) {
        if (replace) try deleteRows(writer, &channel.id, &.{Tables.holdings});
        try holdingRows(writer, channel);
    }
}

pub fn rowsWrite(writer: pb.Writer, all: bool) error{OutOfMemory}!void {
    defer rowsForget();
    if (all) {
        for (fold.channels.items) |channel| try channelRows(writer, channel, part_all, false);
    } else {
        if (chain_time_changed) {
            for (fold.channels.items) |channel| {
                if (channel.challenged) try touch(channel.id, part_row);
            }
        }
        std.sort.pdq(Dirty, dirty.items, {}, lessDirty);
        var index: usize = 0;
        while (index < dirty.items.len) {
            const id = dirty.items[index].id;
            var parts: u8 = 0;
            while (index < dirty.items.len and std.mem.eql(u8, &dirty.items[index].id, &id)) {
                parts |= dirty.items[index].parts;
                index += 1;
            }
            if (channelFind(id)) |channel| {
                try channelRows(writer, channel, parts, true);
            } else {
                const every = [_]u32{
                    Tables.channels, Tables.participants, Tables.holdings,
                    Tables.balances, Tables.guarantees,
                };
                try deleteRows(writer, &id, &every);
            }
        }
    }
    var totals = try abi.Row.begin(writer, Tables.totals, false);
    try totals.int(1);
    try totals.uint(abi.folded.records);
    try totals.uint(abi.folded.cursor);
    try totals.uint(fold.vouchers);
    try totals.uint(fold.chain_time_s);
    try totals.end();
}

// ---------------------------------------------------------------- snapshots

fn snapshotChannel(writer: abi.SnapshotWriter, channel: *const Channel) !void {
    try writer.array(&channel.id);
    try writer.bytes(channel.fixed);
    try writer.byte(channel.participants);
    try writer.int(u32, @intCast(channel.states.items.len));
    for (channel.states.items) |entry| {
        try writer.array(&entry.hash);
        try writer.int(u64, entry.turn);
        try writer.flag(entry.is_final);
        try writer.bytes(entry.state);
        try writer.int(u16, entry.mask);
        for (0..channel.participants) |participant| {
            if (entry.mask & (@as(u16, 1) << @intCast(participant)) != 0) {
                try writer.array(entry.signature(participant));
            }
        }
    }
    try writer.array(channel.latest[0..channel.participants]);
    try writer.byte(channel.supported);
    try writer.int(u32, @intCast(channel.holdings.items.len));
    for (channel.holdings.items) |holding| {
        try writer.array(&holding.asset);
        try writer.amount(holding.amount);
    }
    try writer.amount(channel.voucher_amount);
    try writer.amount(channel.paid);
    try writer.amount(channel.received);
    try writer.int(u64, channel.vouchers);
    try writer.int(u64, channel.finalizes_at);
    try writer.flag(channel.challenged);
    try writer.flag(channel.concluded);
    assert(channel.challenge() == null or channel.challenged);
    // An empty Dispute is freed: memory follows the folded records alone.
    if (channel.dispute) |dispute| assert(dispute.challenge != null or dispute.reclaims > 0);
    try writer.flag(channel.challenge() != null);
    if (channel.challenge()) |candidate| try writer.bytes(candidate);
    try writer.int(u64, channel.reclaims());
    try writer.int(u64, channel.last_seq);
}

fn snapshotUndo(writer: abi.SnapshotWriter, undo: *const Undo) !void {
    try writer.int(u64, undo.block);
    try writer.int(u64, undo.chain_time_s);
    try writer.byte(undo.kind);
    if (!undo.namesChannel()) return;
    try writer.array(&undo.channel_id);
    try writer.flag(undo.created);
    switch (undo.kind) {
        Event.deposited, Event.allocation_updated => {
            try writer.array(&undo.asset);
            try writer.flag(undo.holding_present);
            if (undo.holding_present) try writer.amount(undo.holding);
        },
        Event.concluded => {
            try writer.flag(undo.concluded);
            try writer.int(u64, undo.finalizes_at);
        },
        Event.challenge_registered, Event.challenge_cleared => {
            assert(undo.challenge == null or undo.challenged);
            try writer.flag(undo.challenged);
            try writer.int(u64, undo.finalizes_at);
            try writer.flag(undo.challenge != null);
            if (undo.challenge) |candidate| try writer.bytes(candidate);
        },
        Event.reclaimed => try writer.int(u64, undo.reclaims),
        else => unreachable,
    }
}

/// The journal, oldest entry first (never the ring's layout).
fn snapshotJournal(writer: abi.SnapshotWriter) !void {
    const journal = &fold.journal;
    try writer.int(u64, journal.floor_block);
    try writer.int(u32, journal.count);
    var index: u32 = 0;
    while (index < journal.count) : (index += 1) try snapshotUndo(writer, journal.at(index));
}

pub fn snapshotWrite(writer: abi.SnapshotWriter) error{OutOfMemory}!void {
    try writer.int(u64, fold.vouchers);
    try writer.int(u64, fold.chain_time_s);
    try writer.int(u32, @intCast(fold.channels.items.len));
    for (fold.channels.items) |channel| try snapshotChannel(writer, channel);
    try snapshotJournal(writer);
}

fn restoreReference(
    reader: *abi.SnapshotReader,
    channel: *const Channel,
    allow_none: bool,
) abi.Error!u8 {
    const value = try reader.byte();
    if (value == none and allow_none) return value;
    if (value >= channel.states.items.len) {
        return fail(error.Invalid, "snapshot state reference {d} out of range", .{value});
    }
    return value;
}

fn restoreStates(reader: *abi.SnapshotReader, channel: *Channel) abi.Error!void {
    const count = try reader.int(u32);
    if (count > channel_states_max) return fail(error.Invalid, "snapshot has {d} states", .{count});
    const full = (@as(u32, 1) << @intCast(channel.participants)) - 1;
    for (0..count) |_| {
        var entry: StateEntry = undefined;
        entry.hash = try reader.array(32);
        entry.turn = try reader.int(u64);
        entry.is_final = try reader.flag();
        const state_size = try reader.int(u32);
        const state_bytes = try reader.take(state_size);
        // Stored states are parsed again by queries: check them now.
        var parsed = Accepted{};
        try parseState(state_bytes, &parsed);
        if (parsed.participants != channel.participants or
            !std.mem.eql(u8, parsed.fixed, channel.fixed))
        {
            return fail(error.Invalid, "snapshot state does not match its channel", .{});
        }
        entry.mask = try reader.int(u16);
        if (entry.mask == 0 or entry.mask & ~full != 0) {
            return fail(error.Invalid, "snapshot signer mask {d} is invalid", .{entry.mask});
        }
        var signatures: [participants_max * 65]u8 = @splat(0);
        for (0..channel.participants) |participant| {
            if (entry.mask & (@as(u16, 1) << @intCast(participant)) != 0) {
                signatures[participant * 65 ..][0..65].* = try reader.array(65);
            }
        }
        try channel.states.ensureUnusedCapacity(gpa, 1);
        entry.state = try gpa.dupe(u8, state_bytes);
        const signatures_size = @as(usize, channel.participants) * 65;
        entry.signatures = gpa.dupe(u8, signatures[0..signatures_size]) catch |err| {
            gpa.free(entry.state);
            return err;
        };
        channel.states.appendAssumeCapacity(entry);
    }
    for (channel.latest[0..channel.participants]) |*latest| {
        latest.* = try restoreReference(reader, channel, true);
    }
    channel.supported = try restoreReference(reader, channel, true);
}

fn restoreChannel(reader: *abi.SnapshotReader, channel: *Channel) abi.Error!void {
    channel.fixed = try reader.owned();
    channel.participants = try reader.byte();
    if (channel.participants > participants_max or
        (channel.participants == 0) != (channel.fixed.len == 0))
    {
        return fail(error.Invalid, "snapshot channel has {d} participants", .{
            channel.participants,
        });
    }
    try restoreStates(reader, channel);
    const holdings = try reader.int(u32);
    if (holdings > reader.bytes.len) return fail(error.Invalid, "snapshot holdings count", .{});
    for (0..holdings) |_| {
        const asset = try reader.array(20);
        const amount = try reader.amount();
        const count = channel.holdings.items.len;
        const previous = if (count > 0) &channel.holdings.items[count - 1].asset else null;
        if (previous != null and std.mem.order(u8, previous.?, &asset) != .lt) {
            return fail(error.Invalid, "snapshot holdings are not sorted", .{});
        }
        try channel.holdings.append(gpa, .{ .asset = asset, .amount = amount });
    }
    channel.voucher_amount = try reader.amount();
    channel.paid = try reader.amount();
    channel.received = try reader.amount();
    channel.vouchers = try reader.int(u64);
    channel.finalizes_at = try reader.int(u64);
    channel.challenged = try reader.flag();
    channel.concluded = try reader.flag();
    if (try reader.flag()) {
        const dispute = try disputeGet(channel);
        dispute.challenge = try reader.owned();
        // Queries re-emit it: check it as a record's candidate is checked.
        try wellFormed(&candidate_shape, dispute.challenge.?, 0);
        if (!channel.challenged) {
            return fail(error.Invalid, "snapshot channel has a challenge, not challenged", .{});
        }
    }
    const reclaims = try reader.int(u64);
    if (reclaims > 0) (try disputeGet(channel)).reclaims = reclaims;
    channel.last_seq = try reader.int(u64);
}

/// Reads the facts of one journal entry (after its kind, channel and `created`); a
/// candidate read is owned by `undo`.
fn restoreUndoFacts(reader: *abi.SnapshotReader, undo: *Undo) abi.Error!void {
    switch (undo.kind) {
        Event.deposited, Event.allocation_updated => {
            undo.asset = try reader.array(20);
            undo.holding_present = try reader.flag();
            if (undo.holding_present) undo.holding = try reader.amount();
        },
        Event.concluded => {
            undo.concluded = try reader.flag();
            undo.finalizes_at = try reader.int(u64);
        },
        Event.challenge_registered, Event.challenge_cleared => {
            undo.challenged = try reader.flag();
            undo.finalizes_at = try reader.int(u64);
            if (try reader.flag()) {
                undo.challenge = try reader.owned();
                // Undoing puts it back in a view: check it as a record's candidate.
                try wellFormed(&candidate_shape, undo.challenge.?, 0);
                if (!undo.challenged) {
                    const detail = "snapshot undo has a challenge, not challenged";
                    return fail(error.Invalid, detail, .{});
                }
            }
        },
        Event.reclaimed => undo.reclaims = try reader.int(u64),
        else => unreachable,
    }
    const untouched = !undo.holding_present and !undo.concluded and !undo.challenged and
        undo.finalizes_at == 0 and undo.reclaims == 0;
    if (undo.created and !untouched) {
        return fail(error.Invalid, "snapshot undo creates a channel that had facts", .{});
    }
}

/// Reads one journal entry and checks it against the entries before it and the
/// restored channels, so that undoing it can never fail a safety check.
fn restoreUndo(reader: *abi.SnapshotReader, target: *Fold, undo: *Undo) abi.Error!void {
    const journal = &target.journal;
    undo.block = try reader.int(u64);
    undo.chain_time_s = try reader.int(u64);
    undo.kind = try reader.byte();
    const previous: ?*const Undo = if (journal.count > 0) journal.newest() else null;
    const block_min = if (previous) |entry| entry.block else journal.floor_block;
    const time_min = if (previous) |entry| entry.chain_time_s else 0;
    if (undo.block < block_min or undo.chain_time_s < time_min or
        undo.chain_time_s > target.chain_time_s)
    {
        return fail(error.Invalid, "snapshot undo journal is out of order", .{});
    }
    if (undo.kind != 0 and (undo.kind < Event.deposited or undo.kind > Event.block_processed)) {
        return fail(error.Invalid, "snapshot undo kind {d}", .{undo.kind});
    }
    if (!undo.namesChannel()) return;
    undo.channel_id = try reader.array(32);
    undo.created = try reader.flag();
    const key = channelKey(undo.channel_id);
    if (!channelSearchIn(target.channels.items, key).found) {
        return fail(error.Invalid, "snapshot undo names an unknown channel", .{});
    }
    // Undoing the event that created a channel may remove it: no older entry may name it.
    var index: u32 = 0;
    while (undo.created and index < journal.count) : (index += 1) {
        const entry = journal.at(index);
        if (entry.namesChannel() and channelKey(entry.channel_id) == key) {
            return fail(error.Invalid, "snapshot undo creates a channel named before", .{});
        }
    }
    try restoreUndoFacts(reader, undo);
}

fn restoreJournal(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void {
    const journal = &target.journal;
    journal.floor_block = try reader.int(u64);
    const count = try reader.int(u32);
    if (count > chain_undo_entries_max) {
        return fail(error.Invalid, "snapshot undo journal has {d} entries", .{count});
    }
    if (count == 0) return;
    try journalReserve(journal);
    for (0..count) |_| {
        var undo: Undo = .{ .block = 0, .chain_time_s = 0, .kind = 0 };
        restoreUndo(reader, target, &undo) catch |err| {
            if (undo.challenge) |candidate| gpa.free(candidate);
            return err;
        };
        journal.ring[journal.count] = undo;
        journal.count += 1;
    }
}

pub fn restoreInto(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void {
    target.vouchers = try reader.int(u64);
    target.chain_time_s = try reader.int(u64);
    const count = try reader.int(u32);
    if (count > reader.bytes.len) {
        return fail(error.Invalid, "snapshot channel count {d}", .{count});
    }
    for (0..count) |_| {
        const id = try reader.array(32);
        const key = channelKey(id);
        const channels = target.channels.items;
        if (channels.len > 0 and channels[channels.len - 1].key >= key) {
            return fail(error.Invalid, "snapshot channels are not sorted", .{});
        }
        const channel = try gpa.create(Channel);
        channel.* = .{ .id = id, .key = key };
        target.channels.append(gpa, channel) catch |err| {
            gpa.destroy(channel);
            return err;
        };
        try restoreChannel(reader, channel);
    }
    try restoreJournal(reader, target);
}

fn assert(ok: bool) void {
    if (!ok) unreachable;
}
