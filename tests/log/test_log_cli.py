"""``scnode log show`` and ``scnode log verify``, in-process and as a real command."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main
from node.cli._log import format_time
from node.home import NodeHome
from node.log import EventLog, seq_key
from node.log._summary import short_hex, summarise
from node.proto import log_pb2
from tests.log.log_samples import CASES, payload_record, raw_column, sample_records, tagged_record

COUNT = 12
TIME_MS = 1_764_000_000_123  # 2025-11-24 16:00:00.123 UTC


@pytest.fixture
def home(tmp_path: Path) -> Path:
    with EventLog.open(NodeHome(tmp_path).log_path) as log:
        log.append_batch(sample_records(COUNT, seed=5, time_ms=TIME_MS))
    return tmp_path


@pytest.fixture
def log_path(home: Path) -> Path:
    return NodeHome(home).log_path


def test_show_table(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "show", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["seq", "kind", "time", "(UTC)", "prev", "summary"]
    assert len(lines) == 1 + COUNT
    first = lines[1].split()
    assert first[:5] == ["1", "ACCEPTED_PROPOSAL", "2025-11-24", "16:00:00.123", "0x00000000…"]
    assert "DEPOSIT channel 0x" in lines[10]
    assert "PEER 0x" in lines[8]


def test_show_json_range(home: Path, log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "show", "--home", str(home), "--from", "3", "--to", "5", "--json"]) == 0
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with EventLog.open(log_path) as log:
        raw = dict(log.read_raw(2, 5))
    assert [d["seq"] for d in documents] == [3, 4, 5]
    for document in documents:
        seq = document["seq"]
        assert document["hash"] == hashlib.sha256(raw[seq]).hexdigest()
        assert document["prev_hash"] == hashlib.sha256(raw[seq - 1]).hexdigest()
        assert document["time_ms"] == TIME_MS
        assert document["kind"] == document["payload_case"].upper()
        assert isinstance(document["payload"], dict)


def test_show_empty_range_and_bad_range(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "show", "--home", str(home), "--from", "50", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["log", "show", "--home", str(home), "--from", "0"]) == 2
    assert "from_seq" in capsys.readouterr().err


def test_verify_ok(home: Path, log_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with EventLog.open(log_path) as log:
        head = log.head_hash.hex()
    assert main(["log", "verify", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"OK: {COUNT} records checked, head seq {COUNT} hash {head}"
    assert main(["log", "verify", "--home", str(home), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "ok": True,
        "records_checked": COUNT,
        "first_bad_seq": None,
        "problem": None,
        "first_seq": 1,
        "last_seq": COUNT,
        "head_hash": head,
        "checkpoint": None,
    }


def test_verify_and_show_on_a_broken_log(
    home: Path, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with raw_column(log_path, "records") as records:
        del records[seq_key(7)]
    assert main(["log", "verify", "--home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN: record 7: missing (the next key is seq 8) (6 records checked" in out
    assert main(["log", "verify", "--home", str(home), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_seq"] == 7
    assert main(["log", "show", "--home", str(home), "--json"]) == 1
    assert "broken: record 7: is missing from the log" in capsys.readouterr().err


def test_commands_work_beside_a_writer(home: Path, log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch(sample_records(3, seed=9))
        assert main(["log", "verify", "--home", str(home)]) == 0
        assert main(["log", "show", "--home", str(home), "--json"]) == 0


def test_missing_log_and_missing_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("show", "verify"):
        assert main(["log", command, "--home", str(tmp_path / "none")]) == 2
        assert f"no event log at {tmp_path / 'none' / 'log'}" in capsys.readouterr().err
    assert main(["log"]) == 2
    assert "show" in capsys.readouterr().out


@pytest.mark.slow
def test_as_a_real_command(home: Path) -> None:
    command = [sys.executable, "-m", "node.cli", "log"]
    verify = subprocess.run(
        [*command, "verify", "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["records_checked"] == COUNT
    show = subprocess.run(
        [*command, "show", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert show.returncode == 0, show.stderr
    assert len(show.stdout.splitlines()) == 1 + COUNT
    assert "ACCEPTED_VOUCHER" in show.stdout


@pytest.mark.parametrize(
    ("time_ms", "text"),
    [(0, "-"), (TIME_MS, "2025-11-24 16:00:00.123"), (2**64 - 1, f"{2**64 - 1} ms")],
)
def test_format_time(time_ms: int, text: str) -> None:
    assert format_time(time_ms) == text


@pytest.mark.parametrize("case", CASES)
def test_every_kind_has_a_summary(case: str) -> None:
    text = summarise(payload_record(case, random.Random(case)))
    assert text
    assert "\n" not in text


def test_summary_of_a_record_without_payload() -> None:
    assert summarise(log_pb2.LogRecord()) == "(no payload)"


def test_show_many_records_in_several_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventLog.open(NodeHome(tmp_path).log_path) as log:
        log.append_batch([tagged_record(f"input {n}") for n in range(1, 1006)])
    assert main(["log", "show", "--home", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 1005
    assert lines[-1].split()[0] == "1005"
    assert lines[-1].endswith("UNSPECIFIED: input 1005")


def test_short_hex() -> None:
    assert short_hex(b"") == "-"
    assert short_hex(b"\x01\x02") == "0x0102"
    assert short_hex(bytes(5)) == "0x00000000…"


@pytest.mark.parametrize("json_lines", [False, True])
def test_show_a_record_that_does_not_parse(
    home: Path, log_path: Path, capsys: pytest.CaptureFixture[str], json_lines: bool
) -> None:
    with raw_column(log_path, "records") as records:
        records[seq_key(3)] = b"\xff\xff"
    flags = ["--json"] if json_lines else []
    assert main(["log", "show", "--home", str(home), "--from", "3", *flags]) == 1
    assert "broken: record 3: does not parse as a LogRecord" in capsys.readouterr().err


@pytest.mark.parametrize("json_lines", [False, True])
def test_show_into_a_closed_pipe_exits_quietly(tmp_path: Path, json_lines: bool) -> None:
    """``scnode log show | head``: the reader leaves early; no BrokenPipeError traceback."""
    with EventLog.open(NodeHome(tmp_path).log_path) as log:
        log.append_batch([tagged_record(f"input {n}") for n in range(1, 3001)])
    command = [sys.executable, "-m", "node.cli", "log", "show", "--home", str(tmp_path)]
    shell = " ".join([*command, *(["--json"] if json_lines else [])]) + " | head -n 2"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=60
    )
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""
    assert result.returncode == 0
