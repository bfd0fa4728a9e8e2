"""Shard ownership and layout rules: a stable split by WebID, and a re-shard or an unsafe object store refused
with one line before a collector touches anything (the real CLI, real WAL and lock files)."""

import json
import os
import time

import pytest

from pi_platform import cli
from pi_platform.errors import ConfigError
from pi_platform.sharding import shard_of
from pi_platform.streaming import state
from pi_platform.streaming.gaps import GapLedger
from pi_platform.streaming.shards import Shard, all_shards, check_concurrent_store, check_handover, layouts
from pi_platform.streaming.wal import WriteAheadLog, durable_end

_WEB_IDS = [f"F1DPJak1JMYonxN-0DiJ0iIOQ{i:04d}AAAAUElTSU1cVEFH{i}" for i in range(400)]


def test_every_tag_has_exactly_one_owner_and_keeps_it():
    for count in (1, 2, 3, 5):
        owners = [[s.index for s in all_shards(count) if s.owns(w)] for w in _WEB_IDS]
        assert all(len(o) == 1 for o in owners)
        assert [o[0] for o in owners] == [shard_of(w, count) + 1 for w in _WEB_IDS]  # the batch split, 1-based
        sizes = [sum(1 for o in owners if o[0] == k) for k in range(1, count + 1)]
        assert min(sizes) > 0.6 * len(_WEB_IDS) / count  # spread, not lumped
    assert Shard.parse(" 2/3 ") == Shard(2, 3)
    assert Shard(2, 3).app_id("pi-platform-stream:c") == "pi-platform-stream:c-shard-2-of-3"
    assert Shard(1, 1).app_id("pi-platform-stream:c") == "pi-platform-stream:c"  # unsharded: as before
    for bad in ("2", "0/2", "3/2", "a/b"):
        with pytest.raises(ConfigError, match="K/N|does not exist"):
            Shard.parse(bad)


def _run_shard(capsys, root, lake, shard: str, *extra: str) -> tuple[int, str]:
    code = cli.main(["stream", "--shard", shard, "--state-dir", str(root), "--delta-root", str(lake),
                     "--url", "http://127.0.0.1:9/piwebapi", *extra])
    err = capsys.readouterr().err.strip()
    return code, err


def test_reshard_refused_while_the_old_layout_holds_uncommitted_wal_records_or_runs(tmp_path, capsys):
    root, lake = tmp_path / "state", tmp_path / "lake"
    wal = WriteAheadLog(root / state.WAL_DIR, fsync=False)
    wal.open(0)
    wal.append_sync([(time.time_ns(), "c1", b'{"Items": []}')])  # received, never committed (kill -9)
    wal.close()
    state.write_json(root / state.STATUS_FILE, {"app_id": "pi-platform-stream:collector", "state": "stopped"})
    assert layouts(root) == {1: [root]} and durable_end(root / state.WAL_DIR) > 0

    code, err = _run_shard(capsys, root, lake, "1/2")
    assert code == 2 and len(err.splitlines()) == 1
    assert "holds WAL records" in err and "PI_STREAM_SHARDS=1" in err and "SIGTERM" in err
    assert not (root / "shard-1-of-2" / state.WAL_DIR).exists()  # refused before anything was written

    # A collector of the old layout still running is refused too (the same tags would be collected twice).
    (root / state.WAL_DIR).joinpath("00000000000000000000.wal").unlink()
    held = state.try_lock(root / state.LOCK_FILE)
    try:
        code, err = _run_shard(capsys, root, lake, "2/2")
    finally:
        assert held is not None
        os.close(held)
    assert code == 2 and "still runs" in err and len(err.splitlines()) == 1


def test_plain_stream_with_several_shards_configured_and_s3_without_safe_commits_are_one_line_errors(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PI_STREAM_SHARDS", "2")
    assert cli.main(["stream", "--state-dir", str(tmp_path / "s"), "--url", "http://127.0.0.1:9/piwebapi"]) == 2
    assert "--shard K/2" in capsys.readouterr().err

    options = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    monkeypatch.setenv("PI_DELTA_STORAGE_OPTIONS", json.dumps(options))
    code, err = _run_shard(capsys, tmp_path / "s", "s3://lake/pi", "1/2")
    assert code == 2 and len(err.splitlines()) == 1 and '"conditional_put": "etag"' in err
    check_concurrent_store("s3://lake/pi", {**options, "conditional_put": "etag"}, 2)  # safe: accepted
    check_concurrent_store("s3://lake/pi", options, 1)  # one writer: accepted
    check_concurrent_store(str(tmp_path / "lake"), {}, 4)  # a local lake commits by atomic rename: accepted


def test_open_gaps_of_the_old_layout_are_adopted_by_each_stream_new_owner_once(tmp_path):
    root = tmp_path / "state"
    old = GapLedger(root)
    gap = old.open("channel down", {w: 1_000 + i for i, w in enumerate(_WEB_IDS[:20])}, None)
    inherited = check_handover(root, Shard(1, 2), lambda app_id: None)
    assert [g.id for g in inherited] == [gap.id]
    taken: dict[str, int] = {}
    for shard in all_shards(2):
        ledger = GapLedger(shard.state_dir(root))
        assert ledger.adopt(inherited, shard.owns) == 1
        assert ledger.adopt(inherited, shard.owns) == 0  # once: a restart does not read it again
        taken.update(GapLedger(shard.state_dir(root)).gaps[gap.id].starts)  # durable
    assert taken == gap.starts  # every stream's interval went to exactly its new owner
