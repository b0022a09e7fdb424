//! A second derivation module (ABI version 1): payments per counterparty.
//!
//! It reads the same log as the reference module but keeps another view: for
//! each counterparty address, the total paid to it and received from it by
//! vouchers, and its latest payments. A payment is the increase of a channel's
//! voucher high-water mark; the counterparty is the channel's last participant
//! (the payee) when we paid, else its first (the payer). It answers the
//! queries get_cursor and list_counterparties of derive.proto, and describes its
//! state as tables (the tables extension): payment channels, counterparties,
//! their recent payments and the totals.
//!
//! It is also the short example of a module: abi.zig does the buffers, the
//! batch framing, the record header (seq and cursor), the snapshot header and
//! the exports; this file folds payloads, answers queries and writes and reads
//! its snapshot body.

const std = @import("std");
const abi = @import("abi.zig");
const pb = @import("pb.zig");

const gpa = abi.gpa;
const fail = abi.fail;

/// Safety checks stay on (ReleaseSafe); a failed one traps without formatting
/// a message, which keeps the module small.
pub const panic = std.debug.no_panic;

comptime {
    abi.exportAll(@This());
}

pub const options: abi.Options = .{
    .snapshot_magic = "SCPY",
    .snapshot_version = 1,
    .record_what = "",
    .payload_what = null,
    .bad_argument_names_record = false,
};

const recent_max = 8;

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

pub const Fold = struct {
    /// Sorted by id.
    channels: std.ArrayList(Channel) = .empty,
    /// Sorted by address.
    counterparties: std.ArrayList(Counterparty) = .empty,
};

pub var fold: Fold = .{};

// ---------------------------------------------------------------- tables

pub const tables = [_]abi.Table{
    .{
        .name = "payment_channels",
        .description = "channels with an accepted state or a voucher: " ++
            "who pays whom, the highest voucher",
        .primary_key = &.{0},
        .columns = &.{
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "payer", .type = .hex, .description = "first participant (NULL: no state)" },
            .{ .name = "payee", .type = .hex, .description = "last participant (NULL: no state)" },
            .{ .name = "high_water", .type = .uint256, .description = "the highest voucher" },
        },
    },
    .{
        .name = "counterparties",
        .description = "payment totals per counterparty (the payee when we paid, else the payer)",
        .primary_key = &.{0},
        .columns = &.{
            .{ .name = "address", .type = .hex },
            .{ .name = "sent", .type = .uint256, .description = "paid to them in total" },
            .{ .name = "received", .type = .uint256, .description = "received from them" },
            .{ .name = "payments", .type = .integer },
        },
    },
    .{
        .name = "recent_payments",
        .description = "the latest payments with each counterparty (at most 8 each)",
        .primary_key = &.{ 0, 1 },
        .columns = &.{
            .{ .name = "counterparty", .type = .hex },
            .{ .name = "seq", .type = .integer, .description = "the AcceptedVoucher record" },
            .{ .name = "channel_id", .type = .hex },
            .{ .name = "amount", .type = .uint256, .description = "the increase of the voucher" },
            .{ .name = "sent", .type = .boolean, .description = "1: we paid" },
        },
    },
    .{
        .name = "totals",
        .description = "one row: records folded and the cursor",
        .primary_key = &.{0},
        .columns = &.{
            .{ .name = "id", .type = .integer, .description = "always 1" },
            .{ .name = "records", .type = .integer },
            .{ .name = "last_seq", .type = .integer },
        },
    },
};

const table_channels: u32 = 0;
const table_counterparties: u32 = 1;
const table_recent: u32 = 2;
const table_totals: u32 = 3;

/// What changed since the last RowChanges (while rows are tracked); may repeat.
var dirty_channels: std.ArrayList([32]u8) = .empty;
var dirty_counterparties: std.ArrayList([20]u8) = .empty;

pub fn rowsForget() void {
    dirty_channels.clearRetainingCapacity();
    dirty_counterparties.clearRetainingCapacity();
}

fn lessId(_: void, a: [32]u8, b: [32]u8) bool {
    return lessBytes(&a, &b);
}

fn lessAddress(_: void, a: [20]u8, b: [20]u8) bool {
    return lessBytes(&a, &b);
}

fn channelRow(writer: pb.Writer, channel: *const Channel) !void {
    var row = try abi.Row.begin(writer, table_channels, false);
    try row.blob(&channel.id);
    if (channel.known) {
        try row.blob(&channel.payer);
        try row.blob(&channel.payee);
    } else {
        try row.none();
        try row.none();
    }
    try row.amount(channel.high_water);
    try row.end();
}

fn counterpartyRows(writer: pb.Writer, counterparty: *const Counterparty, replace: bool) !void {
    var row = try abi.Row.begin(writer, table_counterparties, false);
    try row.blob(&counterparty.address);
    try row.amount(counterparty.sent);
    try row.amount(counterparty.received);
    try row.uint(counterparty.payments);
    try row.end();
    if (replace) {
        var gone = try abi.Row.begin(writer, table_recent, true);
        try gone.blob(&counterparty.address);
        try gone.end();
    }
    for (counterparty.recent.items) |payment| {
        var recent = try abi.Row.begin(writer, table_recent, false);
        try recent.blob(&counterparty.address);
        try recent.uint(payment.seq);
        try recent.blob(&payment.channel_id);
        try recent.amount(payment.amount);
        try recent.flag(payment.sent);
        try recent.end();
    }
}

pub fn rowsWrite(writer: pb.Writer, all: bool) error{OutOfMemory}!void {
    defer rowsForget();
    if (all) {
        for (fold.channels.items) |*channel| try channelRow(writer, channel);
        for (fold.counterparties.items) |*party| try counterpartyRows(writer, party, false);
    } else {
        std.sort.pdq([32]u8, dirty_channels.items, {}, lessId);
        for (dirty_channels.items, 0..) |id, index| {
            if (index > 0 and std.mem.eql(u8, &dirty_channels.items[index - 1], &id)) continue;
            const found = channelIndex(id);
            assert(found.found);
            try channelRow(writer, &fold.channels.items[found.index]);
        }
        std.sort.pdq([20]u8, dirty_counterparties.items, {}, lessAddress);
        for (dirty_counterparties.items, 0..) |address, index| {
            const previous = if (index > 0) &dirty_counterparties.items[index - 1] else null;
            if (previous != null and std.mem.eql(u8, previous.?, &address)) continue;
            try counterpartyRows(writer, counterpartyFind(address), true);
        }
    }
    var totals = try abi.Row.begin(writer, table_totals, false);
    try totals.int(1);
    try totals.uint(abi.folded.records);
    try totals.uint(abi.folded.cursor);
    try totals.end();
}

fn assert(ok: bool) void {
    if (!ok) unreachable;
}

pub fn foldFree(target: *Fold) void {
    for (target.counterparties.items) |*counterparty| counterparty.recent.deinit(gpa);
    target.counterparties.deinit(gpa);
    target.channels.deinit(gpa);
    target.* = .{};
}

fn exact(comptime size: usize, field: pb.Field, comptime what: []const u8) abi.Error![size]u8 {
    if (field.wire_type != pb.WireType.length_delimited or field.bytes.len != size) {
        return fail(error.Invalid, what ++ " must be {d} bytes", .{size});
    }
    return field.bytes[0..size].*;
}

fn lessBytes(a: []const u8, b: []const u8) bool {
    return std.mem.order(u8, a, b) == .lt;
}

// ---------------------------------------------------------------- fold

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

fn channelGet(id: [32]u8) abi.Error!*Channel {
    const result = channelIndex(id);
    if (!result.found) {
        if (abi.rowsTracked()) try dirty_channels.append(gpa, id);
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

fn counterpartyFind(address: [20]u8) *Counterparty {
    for (fold.counterparties.items) |*counterparty| {
        if (std.mem.eql(u8, &counterparty.address, &address)) return counterparty;
    }
    unreachable; // only called for a counterparty a payment created
}

fn counterpartyGet(address: [20]u8) abi.Error!*Counterparty {
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
fn applyAccepted(bytes: []const u8) abi.Error!void {
    var channel_id: ?[32]u8 = null;
    var signed: []const u8 = &.{};
    var reader = pb.Reader.init(bytes);
    while (try abi.nextField(&reader, "")) |field| switch (field.number) {
        1 => channel_id = try exact(32, field, "accepted_state.channel_id"),
        3 => signed = try abi.lengthField(field, "accepted_state.signed_state"),
        else => {},
    };
    var state: []const u8 = &.{};
    reader = pb.Reader.init(signed);
    while (try abi.nextField(&reader, "")) |field| {
        if (field.number == 1) state = try abi.lengthField(field, "signed_state.state");
    }
    var fixed: []const u8 = &.{};
    reader = pb.Reader.init(state);
    while (try abi.nextField(&reader, "")) |field| {
        if (field.number == 1) fixed = try abi.lengthField(field, "state.fixed");
    }
    var first: ?[20]u8 = null;
    var last: [20]u8 = undefined;
    reader = pb.Reader.init(fixed);
    while (try abi.nextField(&reader, "")) |field| {
        if (field.number != 1) continue;
        last = try exact(20, field, "state.fixed.participants[]");
        if (first == null) first = last;
    }
    const id = channel_id orelse
        return fail(error.Invalid, "accepted_state.channel_id is missing", .{});
    const payer = first orelse return fail(error.Invalid, "state.fixed has no participants", .{});
    const channel = try channelGet(id);
    if (channel.known) return;
    if (abi.rowsTracked()) try dirty_channels.append(gpa, id);
    channel.known = true;
    channel.payer = payer;
    channel.payee = last;
}

fn applyVoucher(bytes: []const u8, seq: u64) abi.Error!void {
    var voucher: []const u8 = &.{};
    var sent = false;
    var reader = pb.Reader.init(bytes);
    while (try abi.nextField(&reader, "")) |field| switch (field.number) {
        1 => voucher = try abi.lengthField(field, "accepted_voucher.voucher"),
        2 => sent = (try abi.intField(field, "accepted_voucher.sent")) != 0,
        else => {},
    };
    var channel_id: ?[32]u8 = null;
    var amount: u256 = 0;
    reader = pb.Reader.init(voucher);
    while (try abi.nextField(&reader, "")) |field| switch (field.number) {
        1 => channel_id = try exact(32, field, "voucher.channel_id"),
        2 => {
            const bytes_amount = try abi.lengthField(field, "voucher.amount");
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
    if (abi.rowsTracked()) try dirty_channels.append(gpa, channel.id);
    const increase = amount - channel.high_water;
    channel.high_water = amount;
    if (!channel.known) return;
    const address = if (sent) channel.payee else channel.payer;
    if (abi.rowsTracked()) try dirty_counterparties.append(gpa, address);
    const counterparty = try counterpartyGet(address);
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

/// Folds accepted states and vouchers; other records only advance the cursor.
pub fn applyPayload(payload: pb.Field, seq: u64) abi.Error!void {
    switch (payload.number) {
        10 => try applyAccepted(try abi.lengthField(payload, "record.accepted_state")),
        17 => try applyVoucher(try abi.lengthField(payload, "record.accepted_voucher"), seq),
        else => {},
    }
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

/// The query is the last length-delimited field; a malformed one is none.
pub fn answer(writer: pb.Writer, bytes: []const u8) error{OutOfMemory}!void {
    var kind: u32 = 0;
    var reader = pb.Reader.init(bytes);
    while (reader.next() catch null) |field| {
        if (field.wire_type == pb.WireType.length_delimited) kind = field.number;
    } else if (reader.position != bytes.len) kind = 0;
    switch (kind) {
        4 => try abi.writeCursor(writer),
        5 => try writeCounterparties(writer),
        else => try abi.writeBadQuery(
            writer,
            "query: this module answers get_cursor and list_counterparties",
        ),
    }
}

// ---------------------------------------------------------------- snapshots

pub fn snapshotWrite(writer: abi.SnapshotWriter) error{OutOfMemory}!void {
    try writer.int(u32, @intCast(fold.channels.items.len));
    for (fold.channels.items) |channel| {
        try writer.array(&channel.id);
        try writer.flag(channel.known);
        if (channel.known) {
            try writer.array(&channel.payer);
            try writer.array(&channel.payee);
        }
        try writer.amount(channel.high_water);
    }
    try writer.int(u32, @intCast(fold.counterparties.items.len));
    for (fold.counterparties.items) |counterparty| {
        try writer.array(&counterparty.address);
        try writer.amount(counterparty.sent);
        try writer.amount(counterparty.received);
        try writer.int(u64, counterparty.payments);
        try writer.byte(@intCast(counterparty.recent.items.len));
        for (counterparty.recent.items) |payment| {
            try writer.int(u64, payment.seq);
            try writer.array(&payment.channel_id);
            try writer.amount(payment.amount);
            try writer.flag(payment.sent);
        }
    }
}

fn restoreChannel(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void {
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

fn restoreCounterparty(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void {
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
    const recent = try reader.byte();
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

pub fn restoreInto(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void {
    const size = reader.bytes.len;
    const channels = try reader.int(u32);
    if (channels > size) return fail(error.Invalid, "snapshot channel count {d}", .{channels});
    for (0..channels) |_| try restoreChannel(reader, target);
    const counterparties = try reader.int(u32);
    if (counterparties > size) return fail(error.Invalid, "snapshot counterparty count", .{});
    for (0..counterparties) |_| try restoreCounterparty(reader, target);
}
