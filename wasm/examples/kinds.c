/*
 * kinds.c: a derivation module in C (ABI version 1 with the tables extension,
 * docs/derive-abi.md), the walk-through example of a module in another language.
 *
 * It derives two things the reference module does not keep: how many records of
 * each kind the log holds, and per channel how many vouchers it saw and the
 * highest. It answers get_cursor, and describes its state as three tables:
 * record_kinds, voucher_channels and totals.
 *
 * No libc, no imports: built by the pinned Zig toolchain's clang
 * (scripts/build_wasm.py):
 *
 *   python -m ziglang cc -target wasm32-freestanding -mcpu=lime1 -O2 -nostdlib \
 *     -Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=65536 \
 *     -Wl,--export=abi_version ... -o kinds.wasm kinds.c
 *
 * Memory is fixed at build time: static buffers and a bounded channel table
 * (CHANNELS_MAX); past it a record is refused with code 6. Every input is
 * checked before the state changes; a bad record gets an error code and an
 * explanation, never a trap.
 */

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define EXPORT(name) __attribute__((export_name(name)))

enum {
  CODE_OK = 0,
  CODE_FRAMING = 1,
  CODE_MALFORMED = 2,
  CODE_INVALID = 3,
  CODE_SEQUENCE = 4,
  CODE_OUT_OF_MEMORY = 6,
  CODE_BAD_ARGUMENT = 7,
};

#define INPUT_MAX (8u << 20)
#define OUTPUT_MAX (8u << 20)
#define SCRATCH_MAX 4096u
#define CHANNELS_MAX 65536u
/* LogRecord payload fields (log.proto): 10 accepted_state .. 20 watch. */
#define KIND_FIRST 10u
#define KIND_LAST 20u
#define KINDS (KIND_LAST - KIND_FIRST + 1u)
#define KIND_VOUCHER 17u
#define SNAPSHOT_VERSION 1u

/* The state. Channels are kept sorted by id: the snapshot is canonical. */
typedef struct {
  u8 id[32];
  u8 highest[32]; /* uint256, big-endian */
  u64 vouchers;
  u8 dirty;
} channel;

static u64 cursor;
static u64 records;
static u64 kinds[KINDS];
static u8 kinds_dirty[KINDS];
static channel channels[CHANNELS_MAX];
static u32 channel_count;

/* The tables extension: on after describe_tables(); `tables_all` asks the next
 * RowChanges for every row (after describe_tables() and restore()). */
static int tables_on;
static int tables_all;

static u8 input[INPUT_MAX];
static u8 output[OUTPUT_MAX];
static u32 output_len;

/* ------------------------------------------------------------ bytes */

void *memcpy(void *target, const void *source, unsigned long size) {
  u8 *t = target;
  const u8 *s = source;
  while (size--) *t++ = *s++;
  return target;
}

void *memmove(void *target, const void *source, unsigned long size) {
  u8 *t = target;
  const u8 *s = source;
  if (t < s) {
    while (size--) *t++ = *s++;
  } else {
    while (size--) t[size] = s[size];
  }
  return target;
}

void *memset(void *target, int value, unsigned long size) {
  u8 *t = target;
  while (size--) *t++ = (u8)value;
  return target;
}

static int compare(const u8 *a, const u8 *b, u32 size) {
  for (u32 i = 0; i < size; i++) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

/* ------------------------------------------------------------ output */

/* Appends to a buffer of `capacity` bytes; a full buffer sets `*overflow`. */
typedef struct {
  u8 *data;
  u32 length;
  u32 capacity;
  int overflow;
} buffer;

static void put(buffer *b, const void *data, u32 size) {
  if (b->overflow || size > b->capacity - b->length) {
    b->overflow = 1;
    return;
  }
  memcpy(b->data + b->length, data, size);
  b->length += size;
}

static void put_varint(buffer *b, u64 value) {
  u8 bytes[10];
  u32 size = 0;
  while (value >= 0x80) {
    bytes[size++] = (u8)(value | 0x80);
    value >>= 7;
  }
  bytes[size++] = (u8)value;
  put(b, bytes, size);
}

static void put_tag(buffer *b, u32 number, u32 wire_type) {
  put_varint(b, ((u64)number << 3) | wire_type);
}

static void put_uint(buffer *b, u32 number, u64 value) {
  put_tag(b, number, 0);
  put_varint(b, value);
}

static void put_bytes(buffer *b, u32 number, const void *data, u32 size) {
  put_tag(b, number, 2);
  put_varint(b, size);
  put(b, data, size);
}

static u32 text_length(const char *text) {
  u32 size = 0;
  while (text[size]) size++;
  return size;
}

static void put_text(buffer *b, u32 number, const char *text) {
  put_bytes(b, number, text, text_length(text));
}

static buffer output_buffer(void) {
  buffer b = {output, 0, OUTPUT_MAX, 0};
  return b;
}

/* An explanation of a failure, "record N: ...", and its code. */
static int fail(int code, u64 seq, const char *what, u64 number) {
  buffer b = output_buffer();
  char digits[24];
  if (seq) {
    put(&b, "record ", 7);
    u32 size = 0;
    do { digits[23 - size++] = (char)('0' + seq % 10); } while (seq /= 10);
    put(&b, digits + 24 - size, size);
    put(&b, ": ", 2);
  }
  put(&b, what, text_length(what));
  if (number != (u64)-1) {
    u32 size = 0;
    put(&b, " ", 1);
    do { digits[23 - size++] = (char)('0' + number % 10); } while (number /= 10);
    put(&b, digits + 24 - size, size);
  }
  output_len = b.length;
  return code;
}

#define NONE ((u64)-1)

/* ------------------------------------------------------------ protobuf reading */

typedef struct {
  const u8 *at;
  const u8 *end;
} reader;

typedef struct {
  u32 number;
  u32 wire_type;
  u64 value;      /* a varint's */
  const u8 *data; /* a length-delimited field's */
  u32 size;
} field;

static int read_varint(reader *r, u64 *value) {
  u64 result = 0;
  for (u32 shift = 0; shift < 64; shift += 7) {
    if (r->at >= r->end) return 0;
    u8 byte = *r->at++;
    if (shift == 63 && byte > 1) return 0;
    result |= (u64)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *value = result;
      return 1;
    }
  }
  return 0;
}

/* 1: a field; 0: the end; -1: malformed. */
static int next_field(reader *r, field *f) {
  u64 key;
  if (r->at == r->end) return 0;
  if (!read_varint(r, &key)) return -1;
  f->number = (u32)(key >> 3);
  f->wire_type = (u32)(key & 7);
  if (f->number == 0 || key >> 3 > 0x1fffffff) return -1;
  switch (f->wire_type) {
    case 0:
      return read_varint(r, &f->value) ? 1 : -1;
    case 1:
    case 5: {
      u32 size = f->wire_type == 1 ? 8 : 4;
      if ((u32)(r->end - r->at) < size) return -1;
      r->at += size;
      return 1;
    }
    case 2: {
      u64 size;
      if (!read_varint(r, &size) || size > (u64)(r->end - r->at)) return -1;
      f->data = r->at;
      f->size = (u32)size;
      r->at += size;
      return 1;
    }
    default:
      return -1;
  }
}

static reader reader_of(const u8 *data, u32 size) {
  reader r = {data, data + size};
  return r;
}

/* ------------------------------------------------------------ folding */

/* The index of the channel with `id`, or where it would go; *found says which. */
static u32 channel_search(const u8 *id, int *found) {
  u32 low = 0, high = channel_count;
  while (low < high) {
    u32 middle = low + (high - low) / 2;
    int order = compare(channels[middle].id, id, 32);
    if (order == 0) {
      *found = 1;
      return middle;
    }
    if (order < 0) low = middle + 1; else high = middle;
  }
  *found = 0;
  return low;
}

/* A voucher, read and checked whole before anything changes. */
typedef struct {
  const u8 *channel_id;
  u8 amount[32];
} voucher;

static int parse_voucher(const u8 *data, u32 size, u64 seq, voucher *v) {
  reader r = reader_of(data, size);
  field f;
  int got;
  const u8 *inner = 0;
  u32 inner_size = 0;
  while ((got = next_field(&r, &f)) > 0) {
    if (f.number == 1 && f.wire_type == 2) {
      inner = f.data;
      inner_size = f.size;
    }
  }
  if (got < 0) return fail(CODE_MALFORMED, seq, "accepted_voucher: malformed protobuf", NONE);
  if (!inner) return fail(CODE_INVALID, seq, "accepted_voucher.voucher is missing", NONE);
  v->channel_id = 0;
  memset(v->amount, 0, 32);
  r = reader_of(inner, inner_size);
  while ((got = next_field(&r, &f)) > 0) {
    if (f.number == 1 && f.wire_type == 2) {
      if (f.size != 32) return fail(CODE_INVALID, seq, "voucher.channel_id bytes:", f.size);
      v->channel_id = f.data;
    } else if (f.number == 2 && f.wire_type == 2) {
      if (f.size != 0 && f.size != 32) {
        return fail(CODE_INVALID, seq, "voucher.amount bytes:", f.size);
      }
      if (f.size == 32) memcpy(v->amount, f.data, 32);
    }
  }
  if (got < 0) return fail(CODE_MALFORMED, seq, "voucher: malformed protobuf", NONE);
  if (!v->channel_id) return fail(CODE_INVALID, seq, "voucher.channel_id is missing", NONE);
  return CODE_OK;
}

static int fold_voucher(const u8 *data, u32 size, u64 seq) {
  voucher v;
  int code = parse_voucher(data, size, seq, &v);
  if (code != CODE_OK) return code;
  int found;
  u32 index = channel_search(v.channel_id, &found);
  if (!found) {
    if (channel_count == CHANNELS_MAX) {
      return fail(CODE_OUT_OF_MEMORY, seq, "channels: the table is full at", CHANNELS_MAX);
    }
    memmove(&channels[index + 1], &channels[index], (channel_count - index) * sizeof(channel));
    memset(&channels[index], 0, sizeof(channel));
    memcpy(channels[index].id, v.channel_id, 32);
    channel_count++;
  }
  channel *c = &channels[index];
  c->vouchers++;
  if (compare(v.amount, c->highest, 32) > 0) memcpy(c->highest, v.amount, 32);
  c->dirty = 1;
  return CODE_OK;
}

/* One LogRecord: seq must follow the cursor, kind must mirror the payload. */
static int fold_record(const u8 *data, u32 size) {
  u64 expected = cursor + 1;
  reader r = reader_of(data, size);
  field f;
  int got;
  u64 seq = 0, kind = 0;
  u32 payload = 0;
  const u8 *payload_data = 0;
  u32 payload_size = 0;
  while ((got = next_field(&r, &f)) > 0) {
    if (f.number == 1 && f.wire_type == 0) seq = f.value;
    if (f.number == 3 && f.wire_type == 0) kind = f.value;
    if (f.number >= KIND_FIRST && f.number <= KIND_LAST && f.wire_type == 2) {
      payload = f.number;
      payload_data = f.data;
      payload_size = f.size;
    }
  }
  if (got < 0) return fail(CODE_MALFORMED, expected, "record: malformed protobuf", NONE);
  if (seq != expected) return fail(CODE_SEQUENCE, expected, "seq is", seq);
  if (!payload) return fail(CODE_INVALID, seq, "record: no payload", NONE);
  if (kind != payload) {
    return fail(CODE_INVALID, seq, "record.kind does not mirror its payload:", kind);
  }
  if (payload == KIND_VOUCHER) {
    int code = fold_voucher(payload_data, payload_size, seq);
    if (code != CODE_OK) return code;
  }
  kinds[payload - KIND_FIRST]++;
  kinds_dirty[payload - KIND_FIRST] = 1;
  cursor = seq;
  records++;
  return CODE_OK;
}

/* ------------------------------------------------------------ tables */

enum { TABLE_KINDS = 0, TABLE_CHANNELS = 1, TABLE_TOTALS = 2 };
enum { TYPE_INTEGER = 1, TYPE_TEXT = 2, TYPE_UINT256 = 4, TYPE_HEX = 6 };

static const char *const kind_names[KINDS] = {
    "ACCEPTED_STATE", "CHAIN_EVENT", "COMMAND", "SENT_MESSAGE",
    "ACKNOWLEDGEMENT", "SUBMITTED_TRANSACTION", "REJECTED", "ACCEPTED_VOUCHER",
    "RECEIVED_MESSAGES", "ACCEPTED_PROPOSAL", "WATCH",
};

typedef struct {
  const char *name;
  u32 type;
} column;

typedef struct {
  const char *name;
  const char *description;
  const column *columns;
  u32 column_count;
} table;

static const column kinds_columns[] = {
    {"kind", TYPE_INTEGER}, {"name", TYPE_TEXT}, {"records", TYPE_INTEGER}};
static const column channels_columns[] = {
    {"channel_id", TYPE_HEX}, {"vouchers", TYPE_INTEGER}, {"highest", TYPE_UINT256}};
static const column totals_columns[] = {
    {"id", TYPE_INTEGER}, {"records", TYPE_INTEGER}, {"last_seq", TYPE_INTEGER}};
static const table tables[] = {
    {"record_kinds", "records of each kind (log.proto RecordKind)", kinds_columns, 3},
    {"voucher_channels", "vouchers seen per channel, and the highest", channels_columns, 3},
    {"totals", "one row: records folded and the cursor", totals_columns, 3},
};

/* A nested message: written into `scratch`, then appended with its length. */
static void put_message(buffer *b, u32 number, const buffer *scratch) {
  if (scratch->overflow) b->overflow = 1;
  put_bytes(b, number, scratch->data, scratch->length);
}

static void describe(buffer *b) {
  static u8 table_bytes[SCRATCH_MAX], column_bytes[SCRATCH_MAX];
  for (u32 t = 0; t < 3; t++) {
    buffer table_message = {table_bytes, 0, SCRATCH_MAX, 0};
    put_text(&table_message, 1, tables[t].name);
    for (u32 c = 0; c < tables[t].column_count; c++) {
      buffer column_message = {column_bytes, 0, SCRATCH_MAX, 0};
      put_text(&column_message, 1, tables[t].columns[c].name);
      put_uint(&column_message, 2, tables[t].columns[c].type);
      put_message(&table_message, 2, &column_message);
    }
    put_uint(&table_message, 3, 0); /* the primary key: the first column */
    put_text(&table_message, 4, tables[t].description);
    put_message(b, 1, &table_message);
  }
}

/* One RowChange (upsert): integers as sint64 (zigzag), texts, blobs. */
static u8 row_bytes[SCRATCH_MAX];

static buffer row_begin(u32 table_index) {
  buffer row = {row_bytes, 0, SCRATCH_MAX, 0};
  if (table_index) put_uint(&row, 1, table_index);
  return row;
}

static void row_integer(buffer *row, u64 value) {
  put_uint(row, 3, value << 1); /* zigzag of a value below 2^63 */
}

static void write_rows(buffer *b, int all) {
  for (u32 k = 0; k < KINDS; k++) {
    if (!(all ? kinds[k] != 0 : kinds_dirty[k])) continue;
    buffer row = row_begin(TABLE_KINDS);
    row_integer(&row, k + KIND_FIRST);
    put_text(&row, 4, kind_names[k]);
    row_integer(&row, kinds[k]);
    put_message(b, 1, &row);
    kinds_dirty[k] = 0;
  }
  for (u32 i = 0; i < channel_count; i++) {
    channel *c = &channels[i];
    if (!(all || c->dirty)) continue;
    buffer row = row_begin(TABLE_CHANNELS);
    put_bytes(&row, 5, c->id, 32);
    row_integer(&row, c->vouchers);
    put_bytes(&row, 5, c->highest, 32);
    put_message(b, 1, &row);
    c->dirty = 0;
  }
  buffer row = row_begin(TABLE_TOTALS);
  row_integer(&row, 1);
  row_integer(&row, records);
  row_integer(&row, cursor);
  put_message(b, 1, &row);
}

static void forget_changes(void) {
  memset(kinds_dirty, 0, sizeof kinds_dirty);
  for (u32 i = 0; i < channel_count; i++) channels[i].dirty = 0;
}

/* ------------------------------------------------------------ snapshots */

static void put_u32(buffer *b, u32 value) {
  u8 bytes[4] = {(u8)value, (u8)(value >> 8), (u8)(value >> 16), (u8)(value >> 24)};
  put(b, bytes, 4);
}

static void put_u64(buffer *b, u64 value) {
  put_u32(b, (u32)value);
  put_u32(b, (u32)(value >> 32));
}

static u32 get_u32(const u8 *at) {
  return at[0] | at[1] << 8 | at[2] << 16 | (u32)at[3] << 24;
}

static u64 get_u64(const u8 *at) {
  return get_u32(at) | (u64)get_u32(at + 4) << 32;
}

#define SNAPSHOT_HEADER (4 + 4 + 8 + 8 + 8 * KINDS + 4)
#define SNAPSHOT_CHANNEL (32 + 8 + 32)

/* Checks a snapshot whole; 0 if it is one this module wrote. */
static int snapshot_check(const u8 *data, u32 size) {
  if (size < SNAPSHOT_HEADER || compare(data, (const u8 *)"SCKD", 4) != 0) {
    return fail(CODE_INVALID, 0, "not a snapshot of kinds.wasm", NONE);
  }
  u32 version = get_u32(data + 4);
  if (version != SNAPSHOT_VERSION) return fail(CODE_INVALID, 0, "snapshot version", version);
  u32 count = get_u32(data + SNAPSHOT_HEADER - 4);
  if (count > CHANNELS_MAX || size != SNAPSHOT_HEADER + count * SNAPSHOT_CHANNEL) {
    return fail(CODE_INVALID, 0, "snapshot size does not match its channels:", count);
  }
  u64 voucher_records = 0;
  for (u32 i = 0; i < count; i++) {
    const u8 *entry = data + SNAPSHOT_HEADER + i * SNAPSHOT_CHANNEL;
    if (i > 0 && compare(entry - SNAPSHOT_CHANNEL, entry, 32) >= 0) {
      return fail(CODE_INVALID, 0, "snapshot channels are not sorted at", i);
    }
    voucher_records += get_u64(entry + 32);
  }
  u64 kind_total = 0;
  for (u32 k = 0; k < KINDS; k++) kind_total += get_u64(data + 24 + 8 * k);
  u64 voucher_kind = get_u64(data + 24 + 8 * (KIND_VOUCHER - KIND_FIRST));
  if (kind_total != get_u64(data + 16) || voucher_records != voucher_kind) {
    return fail(CODE_INVALID, 0, "snapshot counts do not add up", NONE);
  }
  return CODE_OK;
}

/* ------------------------------------------------------------ the ABI */

EXPORT("abi_version") int abi_version(void) { return 1; }

EXPORT("alloc") u32 alloc(u32 size) { return size <= INPUT_MAX ? (u32)input : 0; }

static int bad_argument(u32 pointer, u32 size) {
  if (pointer != (u32)input || size > INPUT_MAX) {
    return fail(CODE_BAD_ARGUMENT, 0, "ptr/len are not inside the alloc() buffer", NONE);
  }
  return CODE_OK;
}

EXPORT("apply_batch") int apply_batch(u32 pointer, u32 size) {
  int code = bad_argument(pointer, size);
  if (code != CODE_OK) return code;
  u32 at = 0;
  while (at < size) {
    if (size - at < 4) return fail(CODE_FRAMING, cursor + 1, "batch ends inside a length", NONE);
    u32 length = get_u32(input + at);
    at += 4;
    if (length > size - at) {
      return fail(CODE_FRAMING, cursor + 1, "length overruns the batch:", length);
    }
    code = fold_record(input + at, length);
    if (code != CODE_OK) return code;
    at += length;
  }
  output_len = 0;
  if (tables_on) {
    buffer b = output_buffer();
    write_rows(&b, tables_all);
    if (b.overflow) return fail(CODE_OUT_OF_MEMORY, 0, "row changes overflow the output", NONE);
    output_len = b.length;
    tables_all = 0;
  }
  return CODE_OK;
}

EXPORT("query") int query(u32 pointer, u32 size) {
  int code = bad_argument(pointer, size);
  if (code != CODE_OK) return code;
  reader r = reader_of(input, size);
  field f;
  u32 asked = 0;
  int got;
  while ((got = next_field(&r, &f)) > 0) {
    if (f.wire_type == 2) asked = f.number;
  }
  buffer b = output_buffer();
  if (got == 0 && asked == 4) { /* get_cursor: QueryResult.cursor (13) */
    static u8 cursor_bytes[16];
    buffer message = {cursor_bytes, 0, sizeof cursor_bytes, 0};
    if (cursor) put_uint(&message, 1, cursor);
    put_message(&b, 13, &message);
  } else {
    put_uint(&b, 1, 2); /* QUERY_STATUS_BAD_QUERY */
    put_text(&b, 2, "query: kinds.wasm answers get_cursor; its view is its tables");
  }
  output_len = b.length;
  return CODE_OK;
}

EXPORT("snapshot") int snapshot(void) {
  buffer b = output_buffer();
  put(&b, "SCKD", 4);
  put_u32(&b, SNAPSHOT_VERSION);
  put_u64(&b, cursor);
  put_u64(&b, records);
  for (u32 k = 0; k < KINDS; k++) put_u64(&b, kinds[k]);
  put_u32(&b, channel_count);
  for (u32 i = 0; i < channel_count; i++) {
    put(&b, channels[i].id, 32);
    put_u64(&b, channels[i].vouchers);
    put(&b, channels[i].highest, 32);
  }
  if (b.overflow) return fail(CODE_OUT_OF_MEMORY, 0, "the snapshot overflows the output", NONE);
  output_len = b.length;
  return CODE_OK;
}

EXPORT("restore") int restore(u32 pointer, u32 size) {
  int code = bad_argument(pointer, size);
  if (code == CODE_OK) code = snapshot_check(input, size);
  if (code != CODE_OK) return code;
  cursor = get_u64(input + 8);
  records = get_u64(input + 16);
  for (u32 k = 0; k < KINDS; k++) kinds[k] = get_u64(input + 24 + 8 * k);
  channel_count = get_u32(input + SNAPSHOT_HEADER - 4);
  for (u32 i = 0; i < channel_count; i++) {
    const u8 *entry = input + SNAPSHOT_HEADER + i * SNAPSHOT_CHANNEL;
    memcpy(channels[i].id, entry, 32);
    channels[i].vouchers = get_u64(entry + 32);
    memcpy(channels[i].highest, entry + 40, 32);
  }
  forget_changes();
  if (tables_on) tables_all = 1;
  output_len = 0;
  return CODE_OK;
}

EXPORT("describe_tables") int describe_tables(void) {
  buffer b = output_buffer();
  describe(&b);
  if (b.overflow) return fail(CODE_OUT_OF_MEMORY, 0, "the schema overflows the output", NONE);
  output_len = b.length;
  tables_on = 1;
  tables_all = 1;
  forget_changes();
  return CODE_OK;
}

EXPORT("out_ptr") u32 out_ptr(void) { return (u32)output; }

EXPORT("out_len") u32 out_len(void) { return output_len; }
