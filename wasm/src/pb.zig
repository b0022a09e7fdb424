//! A small protobuf reader and writer: just what the derivation modules need.
//!
//! The reader walks the fields of one message without allocating; nested
//! messages are read by starting another reader on a field's bytes. The writer
//! appends to a growable byte list and back-patches the length of a nested
//! message when it ends, so every length is a minimal varint.

const std = @import("std");

pub const DecodeError = error{Malformed};

/// Field numbers are 29-bit (protobuf encoding rules).
const field_number_max: u64 = (1 << 29) - 1;

pub const WireType = struct {
    pub const varint: u3 = 0;
    pub const fixed64: u3 = 1;
    pub const length_delimited: u3 = 2;
    pub const fixed32: u3 = 5;
};

pub const Field = struct {
    number: u32,
    wire_type: u3,
    /// The value of a varint, fixed64 or fixed32 field.
    int: u64,
    /// The payload of a length-delimited field.
    bytes: []const u8,
};

pub const Reader = struct {
    buffer: []const u8,
    position: usize,

    pub fn init(buffer: []const u8) Reader {
        return .{ .buffer = buffer, .position = 0 };
    }

    pub fn varint(reader: *Reader) DecodeError!u64 {
        // Fast path: tags and small values are one byte.
        if (reader.position < reader.buffer.len and reader.buffer[reader.position] < 0x80) {
            reader.position += 1;
            return reader.buffer[reader.position - 1];
        }
        var result: u64 = 0;
        var shift: u7 = 0;
        while (shift < 64) : (shift += 7) {
            if (reader.position >= reader.buffer.len) return error.Malformed;
            const byte = reader.buffer[reader.position];
            reader.position += 1;
            // The tenth byte may only carry the top bit of a u64.
            if (shift == 63 and byte > 1) return error.Malformed;
            result |= @as(u64, byte & 0x7f) << @intCast(shift);
            if (byte & 0x80 == 0) return result;
        }
        return error.Malformed;
    }

    fn fixed(reader: *Reader, comptime size: usize) DecodeError!u64 {
        if (reader.buffer.len - reader.position < size) return error.Malformed;
        const start = reader.position;
        reader.position += size;
        const bytes = reader.buffer[start..][0..size];
        return switch (size) {
            4 => std.mem.readInt(u32, bytes, .little),
            8 => std.mem.readInt(u64, bytes, .little),
            else => @compileError("fixed fields are 4 or 8 bytes"),
        };
    }

    /// The next field, or null at the end of the message.
    pub inline fn next(reader: *Reader) DecodeError!?Field {
        std.debug.assert(reader.position <= reader.buffer.len);
        if (reader.position == reader.buffer.len) return null;
        const key = try reader.varint();
        const number = key >> 3;
        if (number == 0 or number > field_number_max) return error.Malformed;
        var field = Field{
            .number = @intCast(number),
            .wire_type = @intCast(key & 7),
            .int = 0,
            .bytes = &.{},
        };
        switch (field.wire_type) {
            WireType.varint => field.int = try reader.varint(),
            WireType.fixed64 => field.int = try reader.fixed(8),
            WireType.fixed32 => field.int = try reader.fixed(4),
            WireType.length_delimited => {
                const length = try reader.varint();
                if (length > reader.buffer.len - reader.position) return error.Malformed;
                const start = reader.position;
                reader.position += @intCast(length);
                field.bytes = reader.buffer[start..reader.position];
            },
            else => return error.Malformed,
        }
        return field;
    }
};

pub const Writer = struct {
    list: *std.ArrayList(u8),
    gpa: std.mem.Allocator,

    pub fn varint(writer: Writer, value: u64) error{OutOfMemory}!void {
        var buffer: [10]u8 = undefined;
        const size = encodeVarint(&buffer, value);
        try writer.list.appendSlice(writer.gpa, buffer[0..size]);
    }

    pub fn tag(writer: Writer, number: u32, wire_type: u3) error{OutOfMemory}!void {
        try writer.varint((@as(u64, number) << 3) | wire_type);
    }

    /// A varint field; omitted when zero, as proto3 does.
    pub fn uint(writer: Writer, number: u32, value: u64) error{OutOfMemory}!void {
        if (value == 0) return;
        try writer.tag(number, WireType.varint);
        try writer.varint(value);
    }

    /// A length-delimited field, written even when empty.
    pub fn bytes(writer: Writer, number: u32, value: []const u8) error{OutOfMemory}!void {
        try writer.tag(number, WireType.length_delimited);
        try writer.varint(value.len);
        try writer.list.appendSlice(writer.gpa, value);
    }

    /// A uint256 as 32 big-endian bytes (always written, even when zero).
    pub fn uint256(writer: Writer, number: u32, value: u256) error{OutOfMemory}!void {
        var buffer: [32]u8 = undefined;
        storeUint256(&buffer, value);
        try writer.bytes(number, &buffer);
    }

    /// Starts a nested message; pass the result to `end`.
    pub fn begin(writer: Writer, number: u32) error{OutOfMemory}!usize {
        try writer.tag(number, WireType.length_delimited);
        return writer.list.items.len;
    }

    /// Ends a nested message: inserts its length before its first byte.
    pub fn end(writer: Writer, start: usize) error{OutOfMemory}!void {
        std.debug.assert(start <= writer.list.items.len);
        var buffer: [10]u8 = undefined;
        const size = encodeVarint(&buffer, writer.list.items.len - start);
        try writer.list.insertSlice(writer.gpa, start, buffer[0..size]);
    }
};

/// Kept out of line: a 256-bit byte swap is a lot of wasm32 code.
pub noinline fn loadUint256(bytes: *const [32]u8) u256 {
    return std.mem.readInt(u256, bytes, .big);
}

pub noinline fn storeUint256(buffer: *[32]u8, value: u256) void {
    std.mem.writeInt(u256, buffer, value, .big);
}

fn encodeVarint(buffer: *[10]u8, value: u64) usize {
    var rest = value;
    var size: usize = 0;
    while (rest >= 0x80) : (rest >>= 7) {
        buffer[size] = @as(u8, @truncate(rest)) | 0x80;
        size += 1;
    }
    buffer[size] = @intCast(rest);
    size += 1;
    std.debug.assert(size <= 10);
    return size;
}

test "varint round trip" {
    var list: std.ArrayList(u8) = .empty;
    defer list.deinit(std.testing.allocator);
    const writer = Writer{ .list = &list, .gpa = std.testing.allocator };
    const values = [_]u64{ 0, 1, 127, 128, 300, std.math.maxInt(u64) };
    for (values) |value| try writer.varint(value);
    var reader = Reader.init(list.items);
    for (values) |value| try std.testing.expectEqual(value, try reader.varint());
    try std.testing.expectEqual(list.items.len, reader.position);
}

test "truncated length-delimited field is malformed" {
    var reader = Reader.init(&[_]u8{ 0x0a, 0x05, 0x01 });
    try std.testing.expectError(error.Malformed, reader.next());
}
