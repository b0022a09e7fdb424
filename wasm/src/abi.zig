//! The plumbing every derivation module shares (ABI version 1, docs/derive-abi.md):
//! the input and output buffers, error codes and their explanations, batch
//! framing, the LogRecord header (seq, cursor, record count), the snapshot
//! header and the exported functions. A module keeps only its own fold, its
//! queries and its snapshot body, and exports the ABI with
//!
//!     comptime {
//!         abi.exportAll(@This());
//!     }
//!
//! where the module's root file declares (all `pub`):
//!
//! * `options: abi.Options`;
//! * `Fold`, the module's state (default-initialisable), the variable
//!   `fold: Fold` and `foldFree(target: *Fold) void`, which frees a fold and
//!   resets it;
//! * `applyPayload(payload: pb.Field, seq: u64) abi.Error!void`: folds the
//!   payload of record `seq` (a LogRecord field numbered 10 to 19). It must
//!   validate everything before changing anything and fail through `fail`;
//! * `answer(writer: pb.Writer, query: []const u8) error{OutOfMemory}!void`:
//!   writes one QueryResult for a serialised Query;
//! * `snapshotWrite(writer: abi.SnapshotWriter) error{OutOfMemory}!void` and
//!   `restoreInto(reader: *abi.SnapshotReader, target: *Fold) abi.Error!void`:
//!   the snapshot body, after the header this file writes and checks.
//!
//! A module with tables (the tables extension, docs/derive-abi.md) also declares:
//!
//! * `tables: []const abi.Table`, its schema; this file exports `describe_tables`;
//! * `rowsWrite(writer: pb.Writer, all: bool) error{OutOfMemory}!void`: writes
//!   the RowChange fields of what changed since the last call (every row of the
//!   state, and no delete, when `all`), then forgets what changed. It tracks
//!   changes only while `abi.tables_on` (`abi.rowsTracked()`);
//! * `rowsForget() void`: forgets what changed (after a restore).

const std = @import("std");
const pb = @import("pb.zig");

pub const gpa = std.heap.wasm_allocator;

const abi_version_current: i32 = 1;
const code_ok: i32 = 0;

/// Why a call failed; `errorCode` gives the code the host sees.
pub const Error = error{
    Framing,
    Malformed,
    Invalid,
    Sequence,
    FixedMismatch,
    OutOfMemory,
    BadArgument,
    /// A BlocksReverted goes back further than the module can undo.
    RevertTooDeep,
};

/// Return codes of apply_batch and restore (docs/derive-abi.md).
pub fn errorCode(err: Error) i32 {
    return switch (err) {
        error.Framing => 1,
        error.Malformed => 2,
        error.Invalid => 3,
        error.Sequence => 4,
        error.FixedMismatch => 5,
        error.OutOfMemory => 6,
        error.BadArgument => 7,
        error.RevertTooDeep => 8,
    };
}

/// QueryStatus values of derive.proto.
pub const QueryStatus = struct {
    pub const not_found: u64 = 1;
    pub const bad_query: u64 = 2;
};

/// What a module tells the shared plumbing about itself.
pub const Options = struct {
    /// The first four bytes of the module's snapshots.
    snapshot_magic: *const [4]u8,
    snapshot_version: u32,
    /// Names a LogRecord in the explanation of a malformed one ("" names none).
    record_what: []const u8,
    /// Set: a record whose payload (fields 10 to 19) is not length-delimited is
    /// refused while its header is read, under this name. Null: the module
    /// checks the payloads it folds.
    payload_what: ?[]const u8,
    /// Whether the explanation of a bad ptr/len names the next record.
    bad_argument_names_record: bool,
};

/// The LogRecord header, folded for every record whether the module uses it or not.
pub const Folded = struct {
    /// The seq of the last record folded.
    cursor: u64 = 0,
    /// Records folded.
    records: u64 = 0,
};

pub var folded: Folded = .{};

// ---------------------------------------------------------------- tables

/// ColumnType values of derive.proto.
pub const ColumnType = enum(u8) {
    integer = 1,
    text = 2,
    blob = 3,
    uint256 = 4,
    boolean = 5,
    hex = 6,
};

pub const Column = struct {
    name: []const u8,
    type: ColumnType,
    description: []const u8 = "",
};

pub const Table = struct {
    name: []const u8,
    columns: []const Column,
    /// Indexes into `columns`.
    primary_key: []const u32,
    description: []const u8 = "",
};

/// Set by describe_tables(): from then on apply_batch writes RowChanges.
pub var tables_on: bool = false;
/// The next RowChanges hold every row (after describe_tables() or restore()).
var tables_all: bool = false;

/// Whether the module should record what each record changes.
pub inline fn rowsTracked() bool {
    return tables_on and !tables_all;
}

/// Writes one RowChange (a field of RowChanges): values in column order (key
/// order for a delete), each in the list of its type; a NULL is listed in `nulls`.
pub const Row = struct {
    writer: pb.Writer,
    start: usize,
    column: u32 = 0,

    pub fn begin(writer: pb.Writer, table: u32, delete: bool) error{OutOfMemory}!Row {
        const start = try writer.begin(1);
        try writer.uint(1, table);
        if (delete) try writer.uint(2, 1);
        return .{ .writer = writer, .start = start };
    }

    /// An INTEGER (zigzag, as sint64).
    pub fn int(row: *Row, value: i64) error{OutOfMemory}!void {
        try row.writer.tag(3, pb.WireType.varint);
        const bits: u64 = @bitCast(value);
        const sign: u64 = @bitCast(value >> 63);
        const zigzag = (bits << 1) ^ sign;
        try row.writer.varint(zigzag);
        row.column += 1;
    }

    /// An unsigned 64-bit value as an INTEGER (two's complement above 2^63 - 1).
    pub fn uint(row: *Row, value: u64) error{OutOfMemory}!void {
        try row.int(@bitCast(value));
    }

    pub fn flag(row: *Row, value: bool) error{OutOfMemory}!void {
        try row.int(@intFromBool(value));
    }

    pub fn text(row: *Row, value: []const u8) error{OutOfMemory}!void {
        try row.writer.bytes(4, value);
        row.column += 1;
    }

    /// A BLOB or HEX value.
    pub fn blob(row: *Row, value: []const u8) error{OutOfMemory}!void {
        try row.writer.bytes(5, value);
        row.column += 1;
    }

    pub fn amount(row: *Row, value: u256) error{OutOfMemory}!void {
        try row.writer.uint256(5, value);
        row.column += 1;
    }

    pub fn none(row: *Row) error{OutOfMemory}!void {
        try row.writer.tag(6, pb.WireType.varint);
        try row.writer.varint(row.column);
        row.column += 1;
    }

    pub fn end(row: *Row) error{OutOfMemory}!void {
        try row.writer.end(row.start);
    }
};

fn writeSchema(writer: pb.Writer, tables: []const Table) error{OutOfMemory}!void {
    for (tables) |table| {
        const table_start = try writer.begin(1);
        try writer.bytes(1, table.name);
        for (table.columns) |column| {
            const column_start = try writer.begin(2);
            try writer.bytes(1, column.name);
            try writer.uint(2, @intFromEnum(column.type));
            if (column.description.len > 0) try writer.bytes(3, column.description);
            try writer.end(column_start);
        }
        for (table.primary_key) |index| {
            try writer.tag(3, pb.WireType.varint);
            try writer.varint(index);
        }
        if (table.description.len > 0) try writer.bytes(4, table.description);
        try writer.end(table_start);
    }
}

var input: std.ArrayList(u8) = .empty;
var output: std.ArrayList(u8) = .empty;
var detail_buffer: [240]u8 = undefined;
/// The record an explanation names; 0 names none.
var current_seq: u64 = 0;

// ---------------------------------------------------------------- errors

/// Records why a call failed (the host reads it from the output buffer).
pub noinline fn fail(err: Error, comptime format: []const u8, args: anytype) Error {
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

// ---------------------------------------------------------------- protobuf fields

/// The next field of a message; `what` names the message if it is malformed
/// ("" names none).
pub inline fn nextField(reader: *pb.Reader, comptime what: []const u8) Error!?pb.Field {
    const detail = if (what.len == 0) "malformed protobuf" else what ++ ": malformed protobuf";
    return reader.next() catch fail(error.Malformed, detail, .{});
}

pub inline fn lengthField(field: pb.Field, comptime what: []const u8) Error![]const u8 {
    if (field.wire_type != pb.WireType.length_delimited) {
        return fail(error.Malformed, what ++ ": wrong wire type", .{});
    }
    return field.bytes;
}

pub inline fn intField(field: pb.Field, comptime what: []const u8) Error!u64 {
    if (field.wire_type != pb.WireType.varint) {
        return fail(error.Malformed, what ++ ": wrong wire type", .{});
    }
    return field.int;
}

// ---------------------------------------------------------------- queries

/// Answers get_cursor.
pub fn writeCursor(writer: pb.Writer) error{OutOfMemory}!void {
    const start = try writer.begin(13);
    try writer.uint(1, folded.cursor);
    try writer.end(start);
}

/// Answers a query the module does not offer, or cannot read.
pub fn writeBadQuery(writer: pb.Writer, detail: []const u8) error{OutOfMemory}!void {
    try writer.uint(1, QueryStatus.bad_query);
    try writer.bytes(2, detail);
}

// ---------------------------------------------------------------- snapshots

/// Appends little-endian fields to the output.
pub const SnapshotWriter = struct {
    list: *std.ArrayList(u8),

    pub fn int(writer: SnapshotWriter, comptime T: type, value: T) error{OutOfMemory}!void {
        var buffer: [@sizeOf(T)]u8 = undefined;
        std.mem.writeInt(T, &buffer, value, .little);
        try writer.list.appendSlice(gpa, &buffer);
    }

    pub fn byte(writer: SnapshotWriter, value: u8) error{OutOfMemory}!void {
        try writer.list.append(gpa, value);
    }

    pub fn flag(writer: SnapshotWriter, value: bool) error{OutOfMemory}!void {
        try writer.byte(@intFromBool(value));
    }

    /// Bytes of a size the reader knows (no length written).
    pub fn array(writer: SnapshotWriter, value: []const u8) error{OutOfMemory}!void {
        try writer.list.appendSlice(gpa, value);
    }

    /// A u32 length, then the bytes (read back by `SnapshotReader.owned`).
    pub fn bytes(writer: SnapshotWriter, value: []const u8) error{OutOfMemory}!void {
        try writer.int(u32, @intCast(value.len));
        try writer.array(value);
    }

    /// 32 big-endian bytes.
    pub fn amount(writer: SnapshotWriter, value: u256) error{OutOfMemory}!void {
        var buffer: [32]u8 = undefined;
        pb.storeUint256(&buffer, value);
        try writer.array(&buffer);
    }
};

/// Reads what a SnapshotWriter wrote; every read is bounds-checked.
pub const SnapshotReader = struct {
    bytes: []const u8,
    position: usize = 0,

    pub fn take(reader: *SnapshotReader, size: usize) Error![]const u8 {
        if (reader.bytes.len - reader.position < size) {
            return fail(error.Invalid, "snapshot is truncated at byte {d}", .{reader.position});
        }
        const start = reader.position;
        reader.position += size;
        return reader.bytes[start..reader.position];
    }

    pub fn int(reader: *SnapshotReader, comptime T: type) Error!T {
        return std.mem.readInt(T, (try reader.take(@sizeOf(T)))[0..@sizeOf(T)], .little);
    }

    pub fn byte(reader: *SnapshotReader) Error!u8 {
        return (try reader.take(1))[0];
    }

    pub fn flag(reader: *SnapshotReader) Error!bool {
        const value = try reader.byte();
        if (value > 1) return fail(error.Invalid, "snapshot flag is {d}", .{value});
        return value == 1;
    }

    pub fn array(reader: *SnapshotReader, comptime size: usize) Error![size]u8 {
        return (try reader.take(size))[0..size].*;
    }

    /// A copy (the caller owns it) of what `SnapshotWriter.bytes` wrote.
    pub fn owned(reader: *SnapshotReader) Error![]u8 {
        const size = try reader.int(u32);
        return gpa.dupe(u8, try reader.take(size));
    }

    pub fn amount(reader: *SnapshotReader) Error!u256 {
        return pb.loadUint256(&(try reader.array(32)));
    }
};

// ---------------------------------------------------------------- exports

/// Exports the ABI functions of `Module` (see the top of this file).
pub fn exportAll(comptime Module: type) void {
    const Exports = ExportsOf(Module);
    @export(&Exports.abi_version, .{ .name = "abi_version" });
    @export(&Exports.alloc, .{ .name = "alloc" });
    @export(&Exports.apply_batch, .{ .name = "apply_batch" });
    @export(&Exports.query, .{ .name = "query" });
    @export(&Exports.snapshot, .{ .name = "snapshot" });
    @export(&Exports.restore, .{ .name = "restore" });
    @export(&Exports.out_ptr, .{ .name = "out_ptr" });
    @export(&Exports.out_len, .{ .name = "out_len" });
    if (@hasDecl(Module, "tables")) {
        @export(&Exports.describe_tables, .{ .name = "describe_tables" });
    }
}

fn ExportsOf(comptime Module: type) type {
    const options: Options = Module.options;
    return struct {
        fn inputSlice(pointer: u32, length: u32) Error![]const u8 {
            const buffer = input.allocatedSlice();
            if (pointer != @intFromPtr(buffer.ptr) or length > buffer.len) {
                current_seq = if (options.bad_argument_names_record) folded.cursor + 1 else 0;
                return fail(error.BadArgument, "ptr/len are not inside the alloc() buffer", .{});
            }
            return buffer[0..length];
        }

        /// Reads the header of one record, checks its seq and folds its payload.
        fn applyRecord(bytes: []const u8) Error!void {
            var reader = pb.Reader.init(bytes);
            var seq: u64 = 0;
            var payload: ?pb.Field = null;
            while (try nextField(&reader, options.record_what)) |field| switch (field.number) {
                1 => seq = try intField(field, "record.seq"),
                10...19 => {
                    if (options.payload_what) |what| _ = try lengthField(field, what);
                    payload = field;
                },
                else => {},
            };
            const expected = folded.cursor + 1;
            if (seq != expected) {
                return fail(error.Sequence, "seq is {d}, expected {d}", .{ seq, expected });
            }
            if (payload) |field| {
                // Inlined: a call per record is measurable fuel on a replay.
                try @call(.always_inline, Module.applyPayload, .{ field, seq });
            }
            folded.cursor = seq;
            folded.records += 1;
        }

        /// Splits a batch: u32 little-endian length || LogRecord, repeated.
        fn applyFramed(batch: []const u8) Error!void {
            var position: usize = 0;
            while (position < batch.len) {
                current_seq = folded.cursor + 1;
                if (batch.len - position < 4) {
                    return fail(error.Framing, "batch ends inside a length", .{});
                }
                const length = std.mem.readInt(u32, batch[position..][0..4], .little);
                position += 4;
                if (length > batch.len - position) {
                    return fail(error.Framing, "length {d} overruns the batch", .{length});
                }
                try applyRecord(batch[position..][0..length]);
                position += length;
            }
        }

        fn snapshotWrite() error{OutOfMemory}!void {
            output.clearRetainingCapacity();
            const writer = SnapshotWriter{ .list = &output };
            try writer.array(options.snapshot_magic);
            try writer.int(u32, options.snapshot_version);
            try writer.int(u64, folded.cursor);
            try writer.int(u64, folded.records);
            try Module.snapshotWrite(writer);
        }

        fn restoreInto(header: *Folded, target: *Module.Fold, bytes: []const u8) Error!void {
            current_seq = 0;
            var reader = SnapshotReader{ .bytes = bytes };
            if (!std.mem.eql(u8, try reader.take(4), options.snapshot_magic)) {
                return fail(error.Invalid, "not a snapshot of this module (bad magic)", .{});
            }
            const version = try reader.int(u32);
            if (version != options.snapshot_version) {
                return fail(error.Invalid, "snapshot version {d}", .{version});
            }
            header.cursor = try reader.int(u64);
            header.records = try reader.int(u64);
            try Module.restoreInto(&reader, target);
            if (reader.position != bytes.len) {
                return fail(error.Invalid, "snapshot has trailing bytes", .{});
            }
        }

        fn abi_version() callconv(.c) i32 {
            return abi_version_current;
        }

        fn alloc(length: u32) callconv(.c) u32 {
            // Room for an error detail even when memory runs out later.
            output.ensureTotalCapacity(gpa, detail_buffer.len) catch return 0;
            input.ensureTotalCapacity(gpa, @max(length, 1)) catch return 0;
            return @intFromPtr(input.allocatedSlice().ptr);
        }

        fn apply_batch(pointer: u32, length: u32) callconv(.c) i32 {
            const batch = inputSlice(pointer, length) catch |err| return errorCode(err);
            applyFramed(batch) catch |err| {
                // Other errors have explained themselves already.
                if (err == error.OutOfMemory) return errorCode(fail(err, "out of memory", .{}));
                return errorCode(err);
            };
            output.clearRetainingCapacity();
            if (@hasDecl(Module, "tables") and tables_on) {
                const writer = pb.Writer{ .list = &output, .gpa = gpa };
                Module.rowsWrite(writer, tables_all) catch {
                    current_seq = 0;
                    return errorCode(fail(error.OutOfMemory, "out of memory", .{}));
                };
                tables_all = false;
            }
            return code_ok;
        }

        fn describe_tables() callconv(.c) i32 {
            output.clearRetainingCapacity();
            const writer = pb.Writer{ .list = &output, .gpa = gpa };
            writeSchema(writer, &Module.tables) catch {
                current_seq = 0;
                return errorCode(fail(error.OutOfMemory, "out of memory", .{}));
            };
            tables_on = true;
            tables_all = true;
            Module.rowsForget();
            return code_ok;
        }

        fn query(pointer: u32, length: u32) callconv(.c) i32 {
            const bytes = inputSlice(pointer, length) catch |err| return errorCode(err);
            output.clearRetainingCapacity();
            const writer = pb.Writer{ .list = &output, .gpa = gpa };
            Module.answer(writer, bytes) catch return errorCode(error.OutOfMemory);
            return code_ok;
        }

        fn snapshot() callconv(.c) i32 {
            current_seq = 0;
            snapshotWrite() catch return errorCode(fail(error.OutOfMemory, "out of memory", .{}));
            return code_ok;
        }

        fn restore(pointer: u32, length: u32) callconv(.c) i32 {
            const bytes = inputSlice(pointer, length) catch |err| return errorCode(err);
            var header: Folded = .{};
            var restored: Module.Fold = .{};
            restoreInto(&header, &restored, bytes) catch |err| {
                Module.foldFree(&restored);
                if (err == error.OutOfMemory) return errorCode(fail(err, "out of memory", .{}));
                return errorCode(err);
            };
            Module.foldFree(&Module.fold);
            Module.fold = restored;
            folded = header;
            if (@hasDecl(Module, "tables") and tables_on) {
                tables_all = true;
                Module.rowsForget();
            }
            output.clearRetainingCapacity();
            return code_ok;
        }

        fn out_ptr() callconv(.c) u32 {
            return @intFromPtr(output.items.ptr);
        }

        fn out_len() callconv(.c) u32 {
            return @intCast(output.items.len);
        }
    };
}
