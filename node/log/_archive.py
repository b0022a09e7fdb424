"""Archives of a pruned log prefix: a compressed, verifiable file of stored records.

An archive holds records ``first_seq..last_seq`` exactly as the live log stored
them, so the hash chain runs through it unchanged (docs/adr/0011-log-archive.md).

Layout (integers big-endian):

======  ==========  ===========================================================
bytes   field       meaning
======  ==========  ===========================================================
8       magic       ``SCNLOGAR``
2       version     1
1       codec       1 = xz (lzma), 2 = gzip: how the body is compressed
1       reserved    0
8       first_seq   the first record held
8       last_seq    the last record held
32      start_hash  sha256 of record ``first_seq - 1`` (zeros when ``first_seq`` is
                    1): the ``prev_hash`` the first record carries
32      head_hash   sha256 of record ``last_seq``: the head of the chain at its end,
                    which the live log keeps as its checkpoint
8       raw_bytes   the body's length uncompressed
8       body_bytes  the body's length as stored (the rest of the file)
32      body_sha    sha256 of the body as stored
======  ==========  ===========================================================

The body is the codec's stream of frames, each a little-endian u32 length and a
record's stored bytes: the framing of the derivation ABI's batches.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import io
import lzma
import os
import struct
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, cast

from node.core.constants import (
    log_archive_chunk_bytes,
    log_archive_record_bytes_max,
    log_hash_bytes,
)
from node.core.errors import InvalidValueError, LogCorruptError
from node.log._records import ZERO_HASH, encode_head, record_hash, seq_key, stored_link
from node.log._types import VerifyReport
from node.log._verify import verify_chain

ARCHIVE_MAGIC: Final = b"SCNLOGAR"
ARCHIVE_VERSION: Final = 1
_HEADER: Final = struct.Struct(">8sHBBQQ32s32sQQ32s")
HEADER_BYTES: Final = _HEADER.size
_FRAME: Final = struct.Struct("<I")
_XZ_PRESET: Final = 0  # the fastest: records are mostly hashes and signatures
_GZIP_LEVEL: Final = 6


class Codec(enum.IntEnum):
    """How an archive's body is compressed (the standard library's codecs: this Python
    has no zstd; a later version of the format may add it under a new number)."""

    XZ = 1
    GZIP = 2


DEFAULT_CODEC: Final = Codec.XZ


@dataclass(frozen=True)
class ArchiveHeader:
    """What an archive says of itself (see the module docstring)."""

    codec: Codec
    first_seq: int
    last_seq: int
    start_hash: bytes
    head_hash: bytes
    raw_bytes: int
    body_bytes: int
    body_sha256: bytes

    def __post_init__(self) -> None:
        assert 1 <= self.first_seq <= self.last_seq, (self.first_seq, self.last_seq)
        assert len(self.start_hash) == len(self.head_hash) == log_hash_bytes
        assert len(self.body_sha256) == log_hash_bytes
        assert self.raw_bytes >= 0
        assert self.body_bytes >= 0

    @property
    def records(self) -> int:
        return self.last_seq - self.first_seq + 1

    def encode(self) -> bytes:
        """The header's bytes, the first ``HEADER_BYTES`` of the file."""
        return _HEADER.pack(
            ARCHIVE_MAGIC,
            ARCHIVE_VERSION,
            int(self.codec),
            0,
            self.first_seq,
            self.last_seq,
            self.start_hash,
            self.head_hash,
            self.raw_bytes,
            self.body_bytes,
            self.body_sha256,
        )

    @classmethod
    def decode(cls, data: bytes) -> ArchiveHeader:
        """Parse a header.

        Raises:
            InvalidValueError: not an archive header, or one this version cannot read.
        """
        if len(data) < HEADER_BYTES or data[: len(ARCHIVE_MAGIC)] != ARCHIVE_MAGIC:
            raise InvalidValueError("archive", "is not an scnode log archive (no SCNLOGAR header)")
        fields = _HEADER.unpack(data[:HEADER_BYTES])
        _, version, codec, reserved, first, last, start, head, raw, body, sha = fields
        if version != ARCHIVE_VERSION:
            raise InvalidValueError("archive", f"format version {version}, expected 1")
        if codec not in tuple(Codec) or reserved != 0:
            raise InvalidValueError("archive", f"unknown codec {codec} (reserved byte {reserved})")
        if not 1 <= first <= last:
            raise InvalidValueError("archive", f"holds records {first}..{last}: not a range")
        if first == 1 and start != ZERO_HASH:
            raise InvalidValueError("archive", "starts at record 1 but links to one before it")
        return cls(Codec(codec), first, last, start, head, raw, body, sha)


class _HashingWriter(io.RawIOBase):
    """A file's writer that hashes and counts what goes through it."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.sha256 = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._file.write(view)
        self.sha256.update(view)
        self.count += len(view)
        return len(view)


class _HashingReader(io.RawIOBase):
    """Reads at most ``limit`` bytes of a file, hashing them."""

    def __init__(self, file: IO[bytes], limit: int) -> None:
        self._file = file
        self._left = limit
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._left)
        data = self._file.read(size)
        memoryview(buffer)[: len(data)] = data
        self.sha256.update(data)
        self._left -= len(data)
        return len(data)


def _compressor(codec: Codec, raw: _HashingWriter) -> io.BufferedIOBase:
    if codec is Codec.XZ:
        return lzma.LZMAFile(cast(IO[bytes], raw), "wb", preset=_XZ_PRESET)
    return gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0)


def _decompressor(codec: Codec, raw: _HashingReader) -> io.BufferedIOBase:
    if codec is Codec.XZ:
        return lzma.LZMAFile(cast(IO[bytes], raw), "rb")
    return gzip.GzipFile(fileobj=raw, mode="rb")


def write_archive(
    path: Path,
    records: Iterable[tuple[int, bytes]],
    *,
    first_seq: int,
    last_seq: int,
    start_hash: bytes,
    codec: Codec = DEFAULT_CODEC,
) -> ArchiveHeader:
    """Write records ``first_seq..last_seq`` to a new archive at ``path``, durably.

    Each record's seq and link to the one before are checked as it goes in, so a
    broken chain is never archived. The file is written beside ``path`` and renamed
    once it and its directory are synced: ``path`` holds a whole archive or nothing.

    Args:
        path: the archive to create (it must not exist).
        records: ``(seq, stored bytes)`` in order, exactly ``first_seq..last_seq``.
        first_seq: the first record.
        last_seq: the last record.
        start_hash: sha256 of record ``first_seq - 1`` (zeros for record 1).
        codec: how to compress the body.

    Returns:
        The header written.

    Raises:
        InvalidValueError: ``path`` exists, or a bad range.
        LogCorruptError: a record is missing, misplaced or breaks the chain.
        OSError: the file could not be written.
    """
    if not 1 <= first_seq <= last_seq:
        raise InvalidValueError("first_seq", f"{first_seq}..{last_seq} is not a range of records")
    if len(start_hash) != log_hash_bytes:
        raise InvalidValueError("start_hash", f"must be {log_hash_bytes} bytes")
    if path.exists():
        raise InvalidValueError("path", f"{path} exists: an archive is never overwritten")
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as file:
            file.write(bytes(HEADER_BYTES))  # the header goes in last
            raw = _HashingWriter(file)
            with _compressor(codec, raw) as body:
                head_hash, raw_bytes = _write_frames(body, records, first_seq, last_seq, start_hash)
            header = ArchiveHeader(
                codec,
                first_seq,
                last_seq,
                start_hash,
                head_hash,
                raw_bytes,
                raw.count,
                raw.sha256.digest(),
            )
            file.seek(0)
            file.write(header.encode())
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        _sync_directory(path.parent)
    finally:
        partial.unlink(missing_ok=True)
    return header


def _write_frames(
    body: io.BufferedIOBase,
    records: Iterable[tuple[int, bytes]],
    first_seq: int,
    last_seq: int,
    start_hash: bytes,
) -> tuple[bytes, int]:
    """Frame and write the records; returns (sha256 of the last one, bytes framed)."""
    expected = first_seq
    link = start_hash
    chunk = bytearray()
    raw_bytes = 0
    pack = _FRAME.pack
    for seq, value in records:
        if seq != expected:
            raise LogCorruptError(expected, f"missing (the next record given is {seq})")
        if stored_link(seq, value) != link:
            raise LogCorruptError(seq, f"its prev_hash is not the sha256 of record {seq - 1}")
        link = record_hash(value)
        chunk += pack(len(value))
        chunk += value
        if len(chunk) >= log_archive_chunk_bytes:
            body.write(chunk)
            raw_bytes += len(chunk)
            chunk.clear()
        if seq == last_seq:
            break
        expected += 1
    else:
        raise LogCorruptError(expected, f"missing (the records end before {last_seq})")
    body.write(chunk)
    return link, raw_bytes + len(chunk)


def _sync_directory(directory: Path) -> None:
    """fsync a directory, so a rename in it is durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class ArchiveReader:
    """One archive: its header, and its records read back as a stream.

    Args:
        path: the archive.

    Raises:
        InvalidValueError: not an archive, or its size differs from its header's.
        OSError: it cannot be read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as file:
            self.header = ArchiveHeader.decode(file.read(HEADER_BYTES))
            size = os.fstat(file.fileno()).st_size
        if size != HEADER_BYTES + self.header.body_bytes:
            raise InvalidValueError(
                "archive",
                f"{path} holds {size - HEADER_BYTES} body bytes, its header says"
                f" {self.header.body_bytes} (truncated or appended to)",
            )

    def records(
        self, from_seq: int | None = None, *, check_links: bool = True
    ) -> Generator[tuple[int, bytes], None, None]:
        """``(seq, stored bytes)`` of every record from ``from_seq`` (default: the first).

        The body is read from its start whatever ``from_seq`` is; with ``check_links``
        each record must link to the one before it (from ``start_hash``), and the
        last one hash to ``head_hash``, so what comes out is the chain the header
        names. The body's sha256 and lengths are checked when it is read to its end.

        Raises:
            LogCorruptError: the body does not decompress, a frame is malformed, a link
                breaks, or the body differs from its sha256 or lengths in the header.
        """
        header = self.header
        start = header.first_seq if from_seq is None else from_seq
        with self.path.open("rb") as file:
            file.seek(HEADER_BYTES)
            raw = _HashingReader(file, header.body_bytes)
            with _decompressor(header.codec, raw) as body:
                frames = _frames(body, header)
                if check_links:
                    frames = _linked(frames, header)
                for seq, value in frames:
                    if seq >= start:
                        yield seq, value
                _check_end(body, raw, header)

    def verify(self) -> VerifyReport:
        """Check every record and link from ``start_hash`` to ``head_hash``, and the body's
        sha256: a report naming the first bad record (``first_seq`` when only the
        digest or the framing fails)."""
        header = self.header
        head = encode_head(header.last_seq, header.head_hash)
        try:
            pairs = ((seq_key(seq), value) for seq, value in self.records(check_links=False))
            report = verify_chain(
                pairs, from_seq=header.first_seq, start_hash=header.start_hash, head_value=head
            )
        except LogCorruptError as error:
            checked = max(error.seq - header.first_seq, 0)
            return VerifyReport(False, checked, error.seq, f"in {self.path.name}: {error}")
        if report.ok or report.problem is None:
            return report
        return VerifyReport(
            False,
            report.records_checked,
            report.first_bad_seq,
            f"in {self.path.name}: {report.problem}",
        )


def _frames(body: io.BufferedIOBase, header: ArchiveHeader) -> Iterator[tuple[int, bytes]]:
    read = body.read
    unpack = _FRAME.unpack
    seq = header.first_seq
    try:
        while seq <= header.last_seq:
            prefix = read(4)
            if len(prefix) != 4:
                raise LogCorruptError(seq, "missing: the archive's body ends before it")
            (length,) = unpack(prefix)
            if length > log_archive_record_bytes_max:
                raise LogCorruptError(seq, f"its frame says {length} bytes: too long")
            value = read(length)
            if len(value) != length:
                raise LogCorruptError(seq, "cut short: the archive's body ends inside it")
            yield seq, value
            seq += 1
    except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile) as error:
        raise LogCorruptError(seq, f"the archive's body does not decompress ({error})") from None


def _linked(
    frames: Iterator[tuple[int, bytes]], header: ArchiveHeader
) -> Iterator[tuple[int, bytes]]:
    """The frames, each checked to link to the one before it, the last to the head."""
    link = header.start_hash
    for seq, value in frames:
        if stored_link(seq, value) != link:
            raise LogCorruptError(seq, f"its prev_hash is not the sha256 of record {seq - 1}")
        link = record_hash(value)
        yield seq, value
    if link != header.head_hash:
        raise LogCorruptError(header.last_seq, "its sha256 differs from the archive's head hash")


def _check_end(body: io.BufferedIOBase, raw: _HashingReader, header: ArchiveHeader) -> None:
    after = header.last_seq + 1
    try:
        trailing = body.read(1)
    except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile) as error:
        raise LogCorruptError(after, f"the archive's body does not decompress ({error})") from None
    if trailing:
        raise LogCorruptError(after, "lies in the archive's body beyond its last record")
    if body.tell() != header.raw_bytes:
        raise LogCorruptError(after, "the archive's body length differs from its header's")
    if raw.sha256.digest() != header.body_sha256:
        raise LogCorruptError(
            header.first_seq, "the archive's body differs from the sha256 in its header"
        )
