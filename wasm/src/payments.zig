//! A second derivation module (ABI version 1): payments per counterparty.
//!
//! It reads the same log as the reference module but keeps another view: for
//! each counterparty address, the total paid to it and received from it by
//! vouchers, and its latest payments. A payment is the increase of a channel's
//! voucher high-water mark; the counterparty is the channel's last participant
//! (the payee) when we paid, else its first (the payer). It answers the
//! queries get_cursor and list_counterparties of derive.proto.

const std = @import("std");
const pb = @import("pb.zig");

const gpa = std.heap.wasm_allocator;

/// Safety checks stay on (ReleaseSafe); a failed one traps without formatting
/// a message, which keeps the module small.
pub const panic = std.debug.no_panic;

const abi_version_current: i32 = 1;
const recent_max = 8;
const none: u32 = std.math.maxInt(u32);

const ApplyError = error{ Framing, Malformed, Invalid, Sequence, OutOfMemory, BadArgument };

fn errorCode(err: ApplyError) i32 {
    return switch (err) {
        error.Framing => 1,
        error.Malformed => 2,
        error.Invalid => 3,
        error.Sequence => 4,
        error.OutOfMemory => 6,
        error.BadArgument => 7,
    };
}

const Channel = struct {
    id: [32]u8,
    /// Participants known (from an accepted state).
    known: bool,
    payer: [20]u8,
    payee: [20]u8,
    high_water: u256,
};

const Payment = struct {
    seq: u64,
    channel_id: [32]u8,
    amount: u256,
    sent: bool,
};

const Counterparty = struct {
    address: [20]u8,
    sent: u256 = 0,
    received: u256 = 0,
    payments: u64 = 0,
    /// Oldest first; at most recent_max.
    recent: std.ArrayList(Payment) = .empty,
};

const Fold = struct {
    channels: std.ArrayList(Channel) = .empty,
    counterparties: std.ArrayList(Counterparty) = .empty,
    cursor: u64 = 0,
    records: u64 = 0,
};

var fold: Fold = .{};
var input: std.ArrayList(u8) = .empty;
var output: std.ArrayList(u8) = .empty;
var detail_buffer: [200]u8 = undefined;
var current_seq: u64 = 0;

noinline fn fail(err: ApplyError, comptime format: []const u8, args: anytype) ApplyError {
    const prefix = if (current_seq == 0)
        detail_buffer[0..0]
    else
        std.fmt.bufPrint(&detail_buffer, "record {d}: ", .{current_seq}) catch unreachable;
    const rest = std.fmt.bufPrint(detail_buffer[prefix.len..], format, args) catch
        detail_buffer[prefix.len..][0..0];
    output.clearRetainingCapacity();
    output.appendSlice(gpa, detail_buffer[0 .. prefix.len + rest.len]) catch {};
    return err;
}

fn fields(reader: *pb.Reader) ApplyError!?pb.Field {
    return reader.next() catch fail(error.Malformed, "malformed protobuf", .{});
}

fn exact(comptime size: usize, field: pb.Field, comptime what: []const u8) ApplyError![size]u8 {
    if (field.wire_type != pb.WireType.length_delimited or field.bytes.len != size) {
        return fail(error.Invalid, what ++ " must be {d} bytes", .{size});
    }
    return field.bytes[0..size].*;
}

fn message(field: pb.Field, comptime what: []const u8) ApplyError![]const u8 {
    if (field.wire_type != pb.WireType.length_delimited) {
        return fail(error.Malformed, what ++ ": wrong wire type", .{});
    }
    return field.bytes;
}

fn varint(field: pb.Field, comptime what: []const u8) ApplyError!u64 {
    if (field.wire_type != pb.WireType.varint) {
        return fail(error.Malformed, what ++ ": wrong wire type", .{});
    }
    return field.int;
}

fn lessBytes(a: []const u8, b: []const u8) bool {
    return std.mem.order(u8, a, b) == .lt;
}

fn channelIndex(id: [32]u8) struct { found: bool, index: usize } {
    var low: usize = 0;
    var high: usize = fold.channels.items.len;
    while (low < high) {
        const middle = low + (high - low) / 2;
        const order = std.mem.order(u8, &fold.channels.items[middle].id, &id);
        if (order == .eq) return .{ .found = true, .index = middle };
        if (order == .lt) low = middle + 1 else high = middle;
    }
    return .{ .found = false, .index = low };
}

fn channelGet(id: [32]u8) ApplyError!*Channel {
    const result = channelIndex(id);
    if (!result.found) {
        try fold.channels.insert(gpa, result.index, .{
            .id = id,
            .known = false,
            .payer = undefined,
            .payee = undefined,
            .high_water = 0,
        });
    }
    return &fold.channels.items[result.index];
}

fn counterpartyGet(address: [20]u8) ApplyError!*Counterparty {
    var index: usize = 0;
    while (index < fold.counterparties.items.len) : (index += 1) {
        const order = std.mem.order(u8, &fold.counterparties.items[index].address, &address);
        if (order == .eq) return &fold.counterparties.items[index];
        if (order == .gt) break;
    }
    try fold.counterparties.insert(gpa, index, .{ .address = address });
    return &fold.counterparties.items[index];
}

/// Learns a channel's payer and payee from the first accepted state.
fn applyAccepted(bytes: []const u8) ApplyError!void {
    var channel_id: ?[32]u8 = null;
    var signed: []const u8 = &.{};
    var reader = pb.Reader.init(bytes);
    while (try fields(&reader)) |field| switch (field.number) {
        1 => channel_id = try exact(32, field, "accepted_state.channel_id"),
        3 => signed = try message(field, "accepted_state.signed_state"),
        else => {},
    };
    var state: []const u8 = &.{};
    reader = pb.Reader.init(signed);
    while (try fields(&reader)) |field| {
        if (field.number == 1) state = try message(field, "signed_state.state");
    }
    var fixed: []const u8 = &.{};
    reader = pb.Reader.init(state);
    while (try fields(&reader)) |field| {
        if (field.number == 1) fixed = try message(field, "state.fixed");
    }
    var first: ?[20]u8 = null;
    var last: [20]u8 = undefined;
    reader = pb.Reader.init(fixed);
    while (try fields(&reader)) |field| {
        if (field.number != 1) continue;
        last = try exact(20, field, "state.fixed.participants[]");
        if (first == null) first = last;
    }
    const id = channel_id orelse
        return fail(error.Invalid, "accepted_state.channel_id is missing", .{});
    const payer = first orelse return fail(error.Invalid, "state.fixed has no participants", .{});
    const channel = try channelGet(id);
    if (channel.known) return;
    channel.known = true;
    channel.payer = payer;
    channel.payee = last;
}

fn applyVoucher(bytes: []const u8, seq: u64) ApplyError!void {
    var voucher: []const u8 = &.{};
    var sent = false;
    var reader = pb.Reader.init(bytes);
    while (try fields(&reader)) |field| switch (field.number) {
        1 => voucher = try message(field, "accepted_voucher.voucher"),
        2 => sent = (try varint(field, "accepted_voucher.sent")) != 0,
        else => {},
    };
    var channel_id: ?[32]u8 = null;
    var amount: u256 = 0;
    reader = pb.Reader.init(voucher);
    while (try fields(&reader)) |field| switch (field.number) {
        1 => channel_id = try exact(32, field, "voucher.channel_id"),
        2 => {
            const bytes_amount = try message(field, "voucher.amount");
            if (bytes_amount.len != 0 and bytes_amount.len != 32) {
                return fail(error.Invalid, "voucher.amount must be 32 bytes", .{});
            }
            if (bytes_amount.len == 32) amount = pb.loadUint256(bytes_amount[0..32]);
        },
        else => {},
    };
    const channel = try channelGet(channel_id orelse
        return fail(error.Invalid, "voucher.channel_id is missing", .{}));
    if (amount <= channel.high_water) return;
    const increase = amount - channel.high_water;
    channel.high_water = amount;
    if (!channel.known) return;
    const counterparty = try counterpartyGet(if (sent) channel.payee else channel.payer);
    if (sent) counterparty.sent +|= increase else counterparty.received +|= increase;
    counterparty.payments += 1;
    if (counterparty.recent.items.len == recent_max) _ = counterparty.recent.orderedRemove(0);
    try counterparty.recent.append(gpa, .{
        .seq = seq,
        .channel_id = channel.id,
        .amount = increase,
        .sent = sent,
    });
}

fn applyRecord(bytes: []const u8) ApplyError!void {
    var reader = pb.Reader.init(bytes);
    var seq: u64 = 0;
    var payload: ?pb.Field = null;
    while (try fields(&reader)) |field| switch (field.number) {
        1 => seq = try varint(field, "record.seq"),
        10...19 => payload = field,
        else => {},
    };
    if (seq != fold.cursor + 1) {
        return fail(error.Sequence, "seq is {d}, expected {d}", .{ seq, fold.cursor + 1 });
    }
    if (payload) |field| switch (field.number) {
        10 => try applyAccepted(try message(field, "record.accepted_state")),
        17 => try applyVoucher(try message(field, "record.accepted_voucher"), seq),
        else => {},
    };
    fold.cursor = seq;
    fold.records += 1;
}

fn applyFramed(batch: []const u8) ApplyError!void {
    var position: usize = 0;
    while (position < batch.len) {
        current_seq = fold.cursor + 1;
        if (batch.len - position < 4) return fail(error.Framing, "batch ends inside a length", .{});
        const length = std.mem.readInt(u32, batch[position..][0..4], .little);
        position += 4;
        if (length > batch.len - position) {
            return fail(error.Framing, "length {d} overruns the batch", .{length});
        }
        try applyRecord(batch[position..][0..length]);
        position += length;
    }
}

fn inputSlice(pointer: u32, length: u32) ApplyError![]const u8 {
    const buffer = input.allocatedSlice();
    if (pointer != @intFromPtr(buffer.ptr) or length > buffer.len) {
        current_seq = 0;
        return fail(error.BadArgument, "ptr/len are not inside the alloc() buffer", .{});
    }
    return buffer[0..length];
}

// ---------------------------------------------------------------- queries

fn writeCounterparties(writer: pb.Writer) !void {
    const list_start = try writer.begin(14);
    for (fold.counterparties.items) |counterparty| {
        const start = try writer.begin(1);
        try writer.bytes(1, &counterparty.address);
        try writer.uint256(2, counterparty.sent);
        try writer.uint256(3, counterparty.received);
        try writer.uint(4, counterparty.payments);
        for (counterparty.recent.items) |payment| {
            const payment_start = try writer.begin(5);
            try writer.uint(1, payment.seq);
            try writer.bytes(2, &payment.channel_id);
            try writer.uint256(3, payment.amount);
            try writer.uint(4, @intFromBool(payment.sent));
            try writer.end(payment_start);
        }
        try writer.end(start);
    }
    try writer.end(list_start);
}

fn answer(bytes: []const u8) !void {
    const writer = pb.Writer{ .list = &output, .gpa = gpa };
    output.clearRetainingCapacity();
    var kind: u32 = 0;
    var reader = pb.Reader.init(bytes);
    while (reader.next() catch null) |field| {
        if (field.wire_type == pb.WireType.length_delimited) kind = field.number;
    } else if (reader.position != bytes.len) kind = 0;
    switch (kind) {
        4 => {
            const start = try writer.begin(13);
            try writer.uint(1, fold.cursor);
            try writer.end(start);
        },
        5 => try writeCounterparties(writer),
        else => {
            try writer.uint(1, 2);
            try writer.bytes(2, "query: this module answers get_cursor and list_counterparties");
        },
    }
}

// ---------------------------------------------------------------- snapshots

const snapshot_magic = "SCPY";
const snapshot_version: u32 = 1;

fn putInt(comptime T: type, value: T) !void {
    var buffer: [@sizeOf(T)]u8 = undefined;
    std.mem.writeInt(T, &buffer, value, .little);
    try output.appendSlice(gpa, &buffer);
}

fn putAmount(value: u256) !void {
    var buffer: [32]u8 = undefined;
    pb.storeUint256(&buffer, value);
    try output.appendSlice(gpa, &buffer);
}

fn snapshotWrite() !void {
    output.clearRetainingCapacity();
    try output.appendSlice(gpa, snapshot_magic);
    try putInt(u32, snapshot_version);
    try putInt(u64, fold.cursor);
    try putInt(u64, fold.records);
    try putInt(u32, @intCast(fold.channels.items.len));
    for (fold.channels.items) |channel| {
        try output.appendSlice(gpa, &channel.id);
        try output.append(gpa, @intFromBool(channel.known));
        if (channel.known) {
            try output.appendSlice(gpa, &channel.payer);
            try output.appendSlice(gpa, &channel.payee);
        }
        try putAmount(channel.high_water);
    }
    try putInt(u32, @intCast(fold.counterparties.items.len));
    for (fold.counterparties.items) |counterparty| {
        try output.appendSlice(gpa, &counterparty.address);
        try putAmount(counterparty.sent);
        try putAmount(counterparty.received);
        try putInt(u64, counterparty.payments);
        try output.append(gpa, @intCast(counterparty.recent.items.len));
        for (counterparty.recent.items) |payment| {
            try putInt(u64, payment.seq);
            try output.appendSlice(gpa, &payment.channel_id);
            try putAmount(payment.amount);
            try output.append(gpa, @intFromBool(payment.sent));
        }
    }
}

const SnapshotReader = struct {
    bytes: []const u8,
    position: usize = 0,

    fn take(reader: *SnapshotReader, size: usize) ApplyError![]const u8 {
        if (reader.bytes.len - reader.position < size) {
            return fail(error.Invalid, "snapshot is truncated at byte {d}", .{reader.position});
        }
        const start = reader.position;
        reader.position += size;
        return reader.bytes[start..reader.position];
    }

    fn int(reader: *SnapshotReader, comptime T: type) ApplyError!T {
        return std.mem.readInt(T, (try reader.take(@sizeOf(T)))[0..@sizeOf(T)], .little);
    }

    fn array(reader: *SnapshotReader, comptime size: usize) ApplyError![size]u8 {
        return (try reader.take(size))[0..size].*;
    }

    fn flag(reader: *SnapshotReader) ApplyError!bool {
        const value = (try reader.take(1))[0];
        if (value > 1) return fail(error.Invalid, "snapshot flag is {d}", .{value});
        return value == 1;
    }

    fn amount(reader: *SnapshotReader) ApplyError!u256 {
        return pb.loadUint256(&(try reader.array(32)));
    }
};

fn restoreCounterparty(reader: *SnapshotReader, target: *Fold) ApplyError!void {
    const address = try reader.array(20);
    const count = target.counterparties.items.len;
    if (count > 0 and !lessBytes(&target.counterparties.items[count - 1].address, &address)) {
        return fail(error.Invalid, "snapshot counterparties are not sorted", .{});
    }
    try target.counterparties.append(gpa, .{ .address = address });
    const counterparty = &target.counterparties.items[count];
    counterparty.sent = try reader.amount();
    counterparty.received = try reader.amount();
    counterparty.payments = try reader.int(u64);
    const recent = (try reader.take(1))[0];
    if (recent > recent_max) {
        return fail(error.Invalid, "snapshot has {d} recent payments", .{recent});
    }
    for (0..recent) |_| {
        try counterparty.recent.append(gpa, .{
            .seq = try reader.int(u64),
            .channel_id = try reader.array(32),
            .amount = try reader.amount(),
            .sent = try reader.flag(),
        });
    }
}

fn restoreInto(target: *Fold, bytes: []const u8) ApplyError!void {
    current_seq = 0;
    var reader = SnapshotReader{ .bytes = bytes };
    if (!std.mem.eql(u8, try reader.take(4), snapshot_magic)) {
        return fail(error.Invalid, "not a snapshot of this module (bad magic)", .{});
    }
    const version = try reader.int(u32);
    if (version != snapshot_version) return fail(error.Invalid, "snapshot version {d}", .{version});
    target.cursor = try reader.int(u64);
    target.records = try reader.int(u64);
    const channels = try reader.int(u32);
    if (channels > bytes.len) return fail(error.Invalid, "snapshot channel count {d}", .{channels});
    for (0..channels) |_| {
        var channel = Channel{
            .id = try reader.array(32),
            .known = try reader.flag(),
            .payer = undefined,
            .payee = undefined,
            .high_water = 0,
        };
        if (channel.known) {
            channel.payer = try reader.array(20);
            channel.payee = try reader.array(20);
        }
        channel.high_water = try reader.amount();
        const count = target.channels.items.len;
        if (count > 0 and !lessBytes(&target.channels.items[count - 1].id, &channel.id)) {
            return fail(error.Invalid, "snapshot channels are not sorted", .{});
        }
        try target.channels.append(gpa, channel);
    }
    const counterparties = try reader.int(u32);
    if (counterparties > bytes.len) return fail(error.Invalid, "snapshot counterparty count", .{});
    for (0..counterparties) |_| try restoreCounterparty(&reader, target);
    if (reader.position != bytes.len) {
        return fail(error.Invalid, "snapshot has trailing bytes", .{});
    }
}

fn foldFree(target: *Fold) void {
    for (target.counterparties.items) |*counterparty| counterparty.recent.deinit(gpa);
    target.counterparties.deinit(gpa);
    target.channels.deinit(gpa);
    target.* = .{};
}

// ---------------------------------------------------------------- exports

export fn abi_version() i32 {
    return abi_version_current;
}

export fn alloc(length: u32) u32 {
    // Room for an error detail even when memory runs out later.
    output.ensureTotalCapacity(gpa, detail_buffer.len) catch return 0;
    input.ensureTotalCapacity(gpa, @max(length, 1)) catch return 0;
    return @intFromPtr(input.allocatedSlice().ptr);
}

export fn apply_batch(pointer: u32, length: u32) i32 {
    const batch = inputSlice(pointer, length) catch |err| return errorCode(err);
    applyFramed(batch) catch |err| {
        // Other errors have explained themselves already.
        if (err == error.OutOfMemory) return errorCode(fail(err, "out of memory", .{}));
        return errorCode(err);
    };
    output.clearRetainingCapacity();
    return 0;
}

export fn query(pointer: u32, length: u32) i32 {
    const bytes = inputSlice(pointer, length) catch |err| return errorCode(err);
    answer(bytes) catch return errorCode(error.OutOfMemory);
    return 0;
}

export fn snapshot() i32 {
    current_seq = 0;
    snapshotWrite() catch return errorCode(fail(error.OutOfMemory, "out of memory", .{}));
    return 0;
}

export fn restore(pointer: u32, length: u32) i32 {
    const bytes = inputSlice(pointer, length) catch |err| return errorCode(err);
    var restored: Fold = .{};
    restoreInto(&restored, bytes) catch |err| {
        foldFree(&restored);
        if (err == error.OutOfMemory) return errorCode(fail(err, "out of memory", .{}));
        return errorCode(err);
    };
    foldFree(&fold);
    fold = restored;
    output.clearRetainingCapacity();
    return 0;
}

export fn out_ptr() u32 {
    return @intFromPtr(output.items.ptr);
}

export fn out_len() u32 {
    return @intCast(output.items.len);
}
