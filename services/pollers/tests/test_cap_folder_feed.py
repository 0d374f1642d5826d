from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from pollers.feeds.cap_folder import CapFolderFeed
from pollers.file_fingerprints import FileFingerprints

pytestmark = pytest.mark.integration


def _feed(folder: Path, client: redis.Redis, ns: str, **kwargs: object) -> CapFolderFeed:
    return CapFolderFeed(folder, FileFingerprints(client, folder, ns), **kwargs)  # type: ignore[arg-type]


def _copy(cap_fixtures: Path, dest: Path, *names: str) -> None:
    for name in names:
        shutil.copy(cap_fixtures / name, dest / Path(name).name)


def test_good_and_bad_files(tmp_path, cap_fixtures, sync_redis_client, bus_namespace) -> None:
    _copy(
        cap_fixtures,
        tmp_path,
        "good/nws-tor-cuyahoga.xml",
        "good/national-npt.xml",
        "bad/billion-laughs.xml",
        "bad/missing-sent.xml",
        "batch/ipaws-recent.xml",
    )
    (tmp_path / "notes.txt").write_text("not xml, not read")
    (tmp_path / "other.xml").write_text("<catalog><book/></catalog>")
    feed = _feed(tmp_path, sync_redis_client, bus_namespace)
    result = feed.poll()
    assert result.errors == [] and result.documents == 6
    assert sorted(p.alert.identifier for p in result.alerts) == sorted(
        [
            "urn:oid:2.49.0.1.840.0.7a1c2e0f4b9d4b1e8f3a6c5d2e1f0a9b8c7d6e5f.001.1",
            "NPT-2026-10-01-1420",
            "urn:oid:2.49.0.1.840.0.ipaws-batch-ffw-lake.001.1",
            "SUMMIT-EVI-2026-0420",
        ]
    )
    assert sorted(result.rejections) == [
        "billion-laughs.xml: XML entity declarations are forbidden",
        "ipaws-recent.xml: alert #2 (BAD-IPAWS-MISSING-SENT): missing <sent>",
        "missing-sent.xml: missing <sent>",
        "other.xml: no CAP <alert> in document (root <catalog>)",
    ]
    assert result.commit is not None
    result.commit()
    again = feed.poll()
    assert again.documents == 0 and again.alerts == [] and again.not_modified


def test_fingerprints_survive_a_restart_and_changes_are_read(
    tmp_path, cap_fixtures, sync_redis_client, bus_namespace
) -> None:
    _copy(cap_fixtures, tmp_path, "good/statewide-ohio-cem.xml", "good/hazmat-circle.xml")
    first = _feed(tmp_path, sync_redis_client, bus_namespace).poll()
    assert first.commit is not None
    first.commit()

    restarted = _feed(tmp_path, sync_redis_client, bus_namespace)
    assert restarted.poll().documents == 0

    # Touched but unchanged: read (mtime changed) but not parsed again.
    cem = tmp_path / "statewide-ohio-cem.xml"
    st = cem.stat()
    os.utime(cem, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = restarted.poll()
    assert touched.documents == 0 and touched.alerts == []
    assert touched.commit is not None
    touched.commit()

    # Changed content: parsed again.
    cem.write_bytes(cem.read_bytes().replace(b"OHEMA-2026-03-0042", b"OHEMA-2026-03-0043"))
    changed = restarted.poll()
    assert [p.alert.identifier for p in changed.alerts] == ["OHEMA-2026-03-0043"]


def test_uncommitted_poll_reads_files_again(
    tmp_path, cap_fixtures, sync_redis_client, bus_namespace
) -> None:
    _copy(cap_fixtures, tmp_path, "good/national-npt.xml")
    feed = _feed(tmp_path, sync_redis_client, bus_namespace)
    assert len(feed.poll().alerts) == 1
    assert len(feed.poll().alerts) == 1  # no commit (publish failed): nothing is forgotten


def test_oversized_file_is_rejected_without_reading(
    tmp_path, sync_redis_client, bus_namespace
) -> None:
    (tmp_path / "huge.xml").write_bytes(b"<" + b"x" * 5000)
    result = _feed(tmp_path, sync_redis_client, bus_namespace, max_document_bytes=4096).poll()
    assert result.rejections == ["huge.xml: document over 4096 bytes"] and result.documents == 0


def test_recursive_and_missing_folder(
    tmp_path, cap_fixtures, sync_redis_client, bus_namespace
) -> None:
    sub = tmp_path / "county"
    sub.mkdir()
    _copy(cap_fixtures, sub, "good/national-npt.xml")
    assert _feed(tmp_path, sync_redis_client, bus_namespace).poll().alerts == []
    deep = _feed(tmp_path, sync_redis_client, bus_namespace, recursive=True).poll()
    assert len(deep.alerts) == 1
    missing = _feed(tmp_path / "nope", sync_redis_client, bus_namespace).poll()
    assert missing.errors and "does not exist" in missing.errors[0]
