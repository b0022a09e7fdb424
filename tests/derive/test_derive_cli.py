"""`scnode derive` and `scnode derive check`."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from node.cli._derive import register
from node.log import EventLog
from node.proto import log_pb2
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    PAYMENTS_WASM,
    ROOT,
    accepted_state,
    channel_spec,
    u256,
)
from tests.derive.wat_modules import counter_module


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scnode")
    register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(argv)
    code: int = namespace.handler(namespace)
    return code


@pytest.fixture
def home(tmp_path: Path) -> Path:
    spec = channel_spec(4, 2)
    voucher = log_pb2.LogRecord()
    voucher.accepted_voucher.sent = True
    voucher.accepted_voucher.voucher.channel_id = spec.channel_id
    voucher.accepted_voucher.voucher.amount = u256(12)
    records = [
        accepted_state(spec, turn=0, is_final=False, amounts=[5, 5], signers={0, 1}),
        accepted_state(spec, turn=1, is_final=False, amounts=[5, 5], signers={0, 1}),
        voucher,
    ]
    with EventLog.open(tmp_path / "log") as log:
        log.append_batch(records)
    return tmp_path


def test_derive_prints_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "--home", str(home), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cursor"] == 3
    (channel,) = report["channels"]
    assert channel["status"] == "CHANNEL_STATUS_OPEN"
    assert report["totals"]["records"] == 3
    # Readable values: ids as 0x-hex, amounts as decimal strings.
    assert re.fullmatch(r"0x[0-9a-f]{64}", channel["channel_id"])
    assert all(re.fullmatch(r"0x[0-9a-f]{40}", p) for p in channel["fixed"]["participants"])
    assert channel["voucher_amount"].isdigit()
    assert (home / "derive-cache").is_dir()
    with EventLog.open(home / "log") as log:
        assert log.latest_snapshot(bytes.fromhex(report["sha256"])) is not None


def test_derive_at_a_seq_travels_in_time(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "--home", str(home), "--at", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cursor"] == 1
    assert report["channels"][0]["status"] == "CHANNEL_STATUS_FUNDING"


def test_derive_prints_tables(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "channels" in out
    assert "open" in out
    assert "records 3, channels 1, open 1, vouchers 1" in out


def test_derive_with_another_module(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "--home", str(home), "--module", str(PAYMENTS_WASM)]) == 0
    out = capsys.readouterr().out
    assert "counterparties (1 rows)" in out
    assert "12" in out


def test_derive_needs_a_home(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive"]) == 2
    captured = capsys.readouterr()
    assert "--home DIR is required" in captured.out
    assert "usage:" in captured.err


def test_derive_reports_a_refused_module(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"nope")
    assert run(["derive", "--home", str(home), "--module", str(bad)]) == 1
    assert "bad.wasm: not a WebAssembly module" in capsys.readouterr().out


def test_derive_reports_a_missing_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "--home", str(tmp_path / "empty")]) == 1
    assert "no event log" in capsys.readouterr().out


def test_check_passes_the_reference_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["derive", "check", str(CHANNELS_WASM)]) == 0
    out = capsys.readouterr().out
    assert "0 differ" in out


def test_check_json_and_a_failing_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counter = tmp_path / "counter.wasm"
    counter.write_bytes(counter_module())
    assert run(["derive", "check", str(counter), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["differs"] > 0
    assert {result["outcome"] for result in report["results"]} >= {"differs"}


def test_derive_shows_a_module_with_tables_as_its_tables(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["derive", "--home", str(home), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    channels = report["tables"]["channels"]
    assert channels["columns"][:2] == ["channel_id", "status"]
    ((channel_id, status, *_),) = channels["rows"]
    assert (status, channel_id) == ("open", report["channels"][0]["channel_id"])
    assert report["tables"]["totals"]["rows"] == [[1, 3, 3, 1, 0]]
    assert run(["derive", "--home", str(home), "--table", "participants", "--at", "1"]) == 0
    out = capsys.readouterr().out
    assert "participants (2 rows)" in out
    assert "holdings" not in out


def test_derive_shows_the_c_example_and_what_a_module_declines(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kinds = ROOT / "wasm" / "examples" / "kinds.wasm"
    assert run(["derive", "--home", str(home), "--module", str(kinds), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["tables"]["record_kinds"]["rows"]) == [
        [10, "ACCEPTED_STATE", 2],
        [17, "ACCEPTED_VOUCHER", 1],
    ]
    assert "get_totals" in report["declined"]
    counter = home / "counter.wasm"
    counter.write_bytes(counter_module())
    assert run(["derive", "--home", str(home), "--module", str(counter)]) == 0
    out = capsys.readouterr().out
    assert "cursor 3" in out
    assert "get_totals: declined" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--at", "-5"], "a sequence number is 0 or more"),
        (["--at", "x"], "is not a sequence number"),
        (["--rows", "0"], "give 1 or more"),
    ],
)
def test_bad_arguments_are_usage_errors(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(["derive", "--home", str(home), *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_an_at_past_the_log_or_an_unknown_table_is_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["derive", "--home", str(home), "--at", "9"]) == 2
    assert "--at 9: the log ends at 3" in capsys.readouterr().out
    assert run(["derive", "--home", str(home), "--table", "nope"]) == 2
    assert "channels.wasm has tables channels, participants" in capsys.readouterr().out


def test_check_reports_snapshots_and_tables_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    kinds = ROOT / "wasm" / "examples" / "kinds.wasm"
    assert run(["derive", "check", str(kinds)]) == 0
    out = capsys.readouterr().out
    assert "snapshots" in out
    assert "4/4" in out
    assert "2/2" in out
    assert "0 differ" in out
    assert run(["derive", "check", str(kinds), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kinds_seen = {result["kind"] for result in report["results"]}
    assert kinds_seen == {"log", "query", "snapshot", "tables"}
