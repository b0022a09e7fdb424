"""Archive and prune the logs of real engines (Alice pays Bob through Irene), then
restart them: the same state, payments go on, and the whole chain still verifies;
derivation and time travel read the archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from node.cli import main
from node.engine import encode_state
from node.log import EventLog
from tests.engine.engine_support import Party, Setting, start_parties, until
from tests.engine.test_engine_payments import open_payment_channel

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NAMES = ("alice", "irene", "bob")


def fingerprint(party: Party) -> tuple[bytes, list[bytes], int, bytes]:
    """What a restarted engine holds: its state, the module's channel views, the head."""
    views = [view.SerializeToString() for view in party.engine.deriver.channels()]
    return encode_state(party.engine.state), views, party.log.last_seq, party.log.head_hash


async def pay_until_received(
    parties: tuple[Party, Party, Party], channel: bytes, total: int
) -> None:
    alice, _, bob = parties
    paid = int((await alice.engine.payment_channel(channel))["paid"])
    for _ in range(total - paid):
        await alice.engine.pay(channel, 1)
    await until(
        lambda: bob.engine.payment_channel(channel), lambda view: view["received"] == str(total)
    )


def close(parties: tuple[Party, ...]) -> None:
    for party in parties:
        party.close()


def derive_json(home: Path, capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["derive", "--home", str(home), "--json", *options]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


async def test_archive_prune_and_restart_keep_the_state(
    setting: Setting, capsys: pytest.CaptureFixture[str]
) -> None:
    parties = setting.path()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 1000)
            await pay_until_received(parties, channel, 20)
            nursery.cancel_scope.cancel()
    close(parties)
    parties = setting.path()  # restored from the logs, not running: a snapshot of each
    for party in parties:
        party.engine.take_snapshot()
    snapshot_seqs = [party.log.last_seq for party in parties]
    close(parties)
    parties = setting.path()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await pay_until_received(parties, channel, 30)  # a tail after the snapshots
            nursery.cancel_scope.cancel()
    close(parties)

    parties = setting.path()
    reference = [fingerprint(party) for party in parties]
    close(parties)
    homes = [setting.directory / name for name in NAMES]
    travelled = derive_json(homes[0], capsys, "--at", str(snapshot_seqs[0] - 3))
    derived = [derive_json(home, capsys) for home in homes]
    archives = [setting.directory / f"{name}.archive" for name in NAMES]
    for home, target, seq in zip(homes, archives, snapshot_seqs, strict=True):
        assert (
            main(
                ["log", "archive", "--home", str(home), "--before", "snapshot", "--to", str(target)]
            )
            == 0
        )
        with EventLog.open(home / "log") as log:
            assert log.first_seq == seq + 1
            assert log.last_seq > seq or home.name == "irene"  # vouchers pass her by

    assert [derive_json(home, capsys) for home in homes] == derived
    assert main(["derive", "--home", str(homes[0]), "--at", str(snapshot_seqs[0] - 3)]) == 1
    assert "is archived" in capsys.readouterr().out
    archive = ["--archive", str(archives[0])]
    assert derive_json(homes[0], capsys, "--at", str(snapshot_seqs[0] - 3), *archive) == travelled
    for home, target in zip(homes, archives, strict=True):
        assert main(["log", "verify", "--home", str(home)]) == 0
        assert main(["log", "verify", "--home", str(home), "--archive", str(target)]) == 0
        assert "from record 1 (archives" in capsys.readouterr().out

    parties = setting.path()
    assert [fingerprint(party) for party in parties] == reference
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await pay_until_received(parties, channel, 35)
            nursery.cancel_scope.cancel()
    for party in parties:
        assert party.log.verify().ok
    close(parties)
    for home, target in zip(homes, archives, strict=True):
        assert main(["log", "verify", "--home", str(home), "--archive", str(target)]) == 0
