"""``scnode log archive``, and ``log show``/``log verify`` with ``--archive``, on a log
holding records and a restart point (an engine snapshot and the module's beside it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli import main
from node.derive import DeriveInstance, DeriveModule
from node.engine import ENGINE_SNAPSHOT_KEY, EngineState, encode_state
from node.home import NodeHome
from node.log import EventLog
from tests.log.log_samples import sample_records

PROJECT = Path(__file__).resolve().parents[2]
CHANNELS = PROJECT / "wasm" / "channels.wasm"
PAYMENTS = PROJECT / "wasm" / "payments.wasm"
RECORDS = 300
SNAPSHOT_SEQ = 200
ADDRESS = "0x" + "11" * 20


@pytest.fixture(scope="module")
def module() -> DeriveModule:
    return DeriveModule.from_file(CHANNELS)


def fill(home: Path, module: DeriveModule, *, snapshots: bool = True) -> Path:
    """A log of RECORDS records; with ``snapshots``, a restart point at SNAPSHOT_SEQ."""
    with EventLog.open(NodeHome(home).log_path) as log:
        for seed in range(3):
            log.append_batch(sample_records(RECORDS // 3, seed=seed))
        if snapshots:
            engine = encode_state(EngineState(ADDRESS, "", ""))
            log.put_snapshot(ENGINE_SNAPSHOT_KEY, SNAPSHOT_SEQ, engine)
            log.put_snapshot(module.sha256, SNAPSHOT_SEQ, DeriveInstance(module).snapshot())
    return home


def archive(home: Path, before: str, target: Path, *extra: str) -> int:
    return main(
        ["log", "archive", "--home", str(home), "--before", before, "--to", str(target), *extra]
    )


def test_archive_prune_then_show_and_verify(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module)
    target = tmp_path / "prefix.archive"
    assert archive(home, "snapshot", target, "--json") == 0
    outcome = json.loads(capsys.readouterr().out)
    assert (outcome["first_seq"], outcome["last_seq"], outcome["records"]) == (1, 200, 200)
    assert outcome["archive_bytes"] == target.stat().st_size
    with EventLog.open(NodeHome(home).log_path) as log:
        assert (log.first_seq, log.checkpoint[0]) == (SNAPSHOT_SEQ + 1, SNAPSHOT_SEQ)
        assert outcome["head_hash"] == log.checkpoint[1].hex()

    assert main(["log", "verify", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 100 records checked from the checkpoint at record 200")
    assert main(["log", "verify", "--home", str(home), "--archive", str(target)]) == 0
    assert "OK: 300 records checked from record 1 (archives" in capsys.readouterr().out
    assert main(["log", "verify", "--home", str(home), "--archive", str(target), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["ok"], document["records_checked"], document["first_seq"]) == (True, 300, 1)
    assert document["checkpoint"]["seq"] == SNAPSHOT_SEQ

    assert main(["log", "show", "--home", str(home), "--json"]) == 0
    shown = [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]
    assert shown == list(range(201, RECORDS + 1))
    assert main(["log", "show", "--home", str(home), "--from", "5"]) == 2
    assert "record 5 is archived" in capsys.readouterr().err
    show = ["log", "show", "--home", str(home), "--from", "199", "--to", "202", "--json"]
    assert main([*show, "--archive", str(target)]) == 0
    shown = [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]
    assert shown == [199, 200, 201, 202]


def test_a_tampered_archive_fails_verify(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module)
    target = tmp_path / "a"
    assert archive(home, "150", target) == 0
    data = bytearray(target.read_bytes())
    data[-10] ^= 0x40
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["log", "verify", "--home", str(home), "--archive", str(target)]) == 1
    assert "BROKEN: record" in capsys.readouterr().out
    assert main(["log", "verify", "--home", str(home)]) == 0  # the live log is intact
    missing = ["log", "verify", "--home", str(home), "--archive", str(tmp_path / "none")]
    assert main(missing) == 2


def test_prune_below_the_restart_point_only(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module)
    target = tmp_path / "a"
    assert archive(home, "202", target) == 1
    err = capsys.readouterr().err
    assert "restarts from its snapshots at record 200" in err
    assert "at most --before 201" in err
    assert archive(home, "1", target) == 1
    assert "prunes nothing" in capsys.readouterr().err
    assert archive(home, "many", target) == 1
    assert "expected a seq" in capsys.readouterr().err
    assert archive(home, "snapshot", target, "--module", str(PAYMENTS)) == 1
    assert "is --module the node's module?" in capsys.readouterr().err
    assert not target.exists()
    with EventLog.open(NodeHome(home).log_path) as log:
        assert log.first_seq == 1


def test_no_prune_without_an_engine_snapshot(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module, snapshots=False)
    assert archive(home, "100", tmp_path / "a") == 1
    assert "no engine snapshot to restart from" in capsys.readouterr().err


def test_an_existing_target_is_kept_and_nothing_pruned(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module)
    target = tmp_path / "a"
    target.write_bytes(b"precious")
    assert archive(home, "snapshot", target) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"
    with EventLog.open(NodeHome(home).log_path) as log:
        assert log.first_seq == 1


def test_a_running_node_must_stop_first(
    tmp_path: Path, module: DeriveModule, capsys: pytest.CaptureFixture[str]
) -> None:
    home = fill(tmp_path / "node", module)
    with EventLog.open(NodeHome(home).log_path):
        assert archive(home, "snapshot", tmp_path / "a") == 2
    assert "stop the node first" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
