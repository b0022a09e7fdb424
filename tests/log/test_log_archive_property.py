"""Properties of the archive format: headers and bodies read back exactly as written,
from any point of the chain, in either codec; and no single changed byte goes unseen."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core.errors import InvalidValueError, LogCorruptError
from node.log import ArchiveHeader, ArchiveReader, Codec, write_archive
from node.log._records import chain_values, record_tail
from tests.log.log_samples import sample_records

hashes = st.binary(min_size=32, max_size=32)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def headers(draw: st.DrawFn) -> ArchiveHeader:
    first = draw(st.integers(min_value=2, max_value=2**64 - 1))
    last = draw(st.integers(min_value=first, max_value=2**64 - 1))
    return ArchiveHeader(
        draw(st.sampled_from(list(Codec))),
        first,
        last,
        draw(hashes),
        draw(hashes),
        draw(uint64),
        draw(uint64),
        draw(hashes),
    )


@given(header=headers())
def test_a_header_decodes_to_what_was_encoded(header: ArchiveHeader) -> None:
    assert ArchiveHeader.decode(header.encode()) == header


def chain(first_seq: int, start_hash: bytes, count: int, seed: int) -> list[tuple[int, bytes]]:
    """``count`` stored records numbered from ``first_seq``, linked from ``start_hash``."""
    tails = [record_tail(record) for record in sample_records(count, seed=seed, time_ms=seed)]
    values, _ = chain_values(first_seq, start_hash, tails)
    return list(enumerate(values, start=first_seq))


chains = st.tuples(
    st.integers(min_value=1, max_value=2**40),  # first_seq
    hashes,  # start hash, when first_seq > 1
    st.integers(min_value=1, max_value=40),  # records
    st.integers(min_value=0, max_value=2**16),  # seed
    st.sampled_from(list(Codec)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=chains, offset=st.integers(min_value=0, max_value=39))
@pytest.mark.slow
def test_an_archive_reads_back_exactly_what_was_written(
    plan: tuple[int, bytes, int, int, Codec], offset: int
) -> None:
    first, start_hash, count, seed, codec = plan
    start_hash = start_hash if first > 1 else bytes(32)
    records = chain(first, start_hash, count, seed)
    last = first + count - 1
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "archive"
        header = write_archive(
            path, iter(records), first_seq=first, last_seq=last, start_hash=start_hash, codec=codec
        )
        reader = ArchiveReader(path)
        assert reader.header == header
        assert list(reader.records()) == records
        from_seq = first + offset % count
        assert list(reader.records(from_seq)) == records[from_seq - first :]
        report = reader.verify()
        assert report.ok
        assert report.records_checked == count


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codec=st.sampled_from(list(Codec)),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
@pytest.mark.slow
def test_no_changed_byte_goes_unseen(codec: Codec, position: int, flip: int) -> None:
    records = chain(7, b"\x05" * 32, 12, seed=3)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "archive"
        write_archive(path, records, first_seq=7, last_seq=18, start_hash=b"\x05" * 32, codec=codec)
        data = bytearray(path.read_bytes())
        data[position % len(data)] ^= flip
        path.write_bytes(bytes(data))
        try:
            reader = ArchiveReader(path)
        except InvalidValueError:
            return  # refused from its header
        assert not reader.verify().ok
        with pytest.raises((LogCorruptError, InvalidValueError)):
            list(reader.records())
