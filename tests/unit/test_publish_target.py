"""The publish target on an object store (fsspec's in-memory store, through universal_pathlib, the way
ObjectStoragePath reaches s3:// or sftp://): no folder rename there, so the manifest is written last,
an earlier manifest is removed first, a failed attempt's files are removed, and extract files that a
killed publication left without a manifest are removed by the next run once they are older than the
grace period. And on a local share: a missing root is never created."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from upath import UPath

from calpads.failures import PublishShareError
from calpads.publish import target


@pytest.fixture
def root():
    r = UPath(f"memory://calpads-{uuid.uuid4().hex[:8]}/pub")
    r.mkdir(parents=True, exist_ok=True)
    yield r
    r.fs.rm(r.path, recursive=True)


def _fill(tmp_path: Path, fail: bool = False):
    def fill(folder):
        for name in ("SPRG_1_2025-2026.txt", "SPRG_1_2025-2026_AU.txt"):
            src = tmp_path / name
            src.write_text(f"{name}\n")
            target.put_file(src, folder, name)
        if fail:
            raise OSError(28, "No space left on device")
        target.put_json({"files": ["SPRG_1_2025-2026.txt", "SPRG_1_2025-2026_AU.txt"]}, folder, "manifest.json")
        return "done"
    return fill


def test_an_object_store_folder_gets_its_manifest_last_and_a_failed_attempt_leaves_no_file(root, tmp_path):
    final = target.run_folder(root, "2025-2026", "SPRG", "manual__a")
    with pytest.raises(PublishShareError, match="No space left on device"):
        target.publish_folder(root, final, _fill(tmp_path, fail=True))
    assert not [p.name for p in final.iterdir() if p.name.endswith((".txt", ".partial"))]
    out, swept = target.publish_folder(root, final, _fill(tmp_path))
    assert out == "done" and swept == []
    assert sorted(p.name for p in final.iterdir()) == ["SPRG_1_2025-2026.txt", "SPRG_1_2025-2026_AU.txt",
                                                        "manifest.json"]


def test_the_next_run_removes_old_unlisted_extract_files_from_an_object_store(root, tmp_path, monkeypatch):
    killed = target.run_folder(root, "2025-2026", "SPRG", "manual__killed")
    killed.mkdir(parents=True, exist_ok=True)
    (killed / "SPRG_1_2025-2026.txt").write_bytes(b"a complete file, no manifest")
    done = target.run_folder(root, "2025-2026", "SPRG", "manual__done")
    target.publish_folder(root, done, _fill(tmp_path))
    # Within the grace period the folder may be a publication still being written: left alone.
    _, swept = target.publish_folder(root, target.run_folder(root, "2025-2026", "SPRG", "manual__b"), _fill(tmp_path))
    assert swept == [] and (killed / "SPRG_1_2025-2026.txt").exists()
    later = (datetime.now(UTC) + timedelta(seconds=target.OBJECT_STORE_GRACE + 60)).timestamp()
    monkeypatch.setattr(target.time, "time", lambda: later)
    _, swept = target.publish_folder(root, target.run_folder(root, "2025-2026", "SPRG", "manual__c"), _fill(tmp_path))
    assert [(Path(s["folder"]).name, s["files"]) for s in swept] == [("manual__killed", ["SPRG_1_2025-2026.txt"])]
    assert not (killed / "SPRG_1_2025-2026.txt").exists()
    assert (done / "manifest.json").exists() and (done / "SPRG_1_2025-2026.txt").exists()   # a result: kept


def test_a_missing_local_publish_root_is_never_created(tmp_path):
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(f"file://{tmp_path}/not_mounted")
    final = target.run_folder(root, "2025-2026", "SPRG", "manual__a")
    with pytest.raises(PublishShareError, match=r"Publish failed: the publish folder .*not_mounted is missing"):
        target.publish_folder(root, final, _fill(tmp_path))
    assert not (tmp_path / "not_mounted").exists()


def _report_tree(tmp_path: Path) -> Path:
    src = tmp_path / "report"
    (src / "data_docs").mkdir(parents=True)
    for k in range(30):
        (src / f"held_back_school_{k:07d}.csv").write_text(f"school {k}\n" * (k + 1))
    (src / "data_docs" / "index.html").write_text("<html></html>")
    return src


def test_put_tree_on_a_local_share_copies_every_file_whole_and_private(tmp_path):
    src = _report_tree(tmp_path)
    dest = tmp_path / "share" / "report"
    target.ensure_folder(dest)
    written = target.put_tree(src, dest)
    expected = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert written == expected and len(written) == 31
    for rel in expected:
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
        assert (dest / rel).stat().st_mode & 0o777 == 0o640
    assert not list(dest.rglob("*.partial"))


def test_put_tree_raises_the_failed_copy_and_leaves_no_partial_file(tmp_path):
    src = _report_tree(tmp_path)
    dest = tmp_path / "share" / "report"
    target.ensure_folder(dest)
    (dest / "held_back_school_0000007.csv" / "in_the_way").mkdir(parents=True)   # the rename onto it fails
    with pytest.raises(OSError):
        target.put_tree(src, dest)
    assert not list(dest.rglob("*.partial"))
    assert (dest / "held_back_school_0000029.csv").read_bytes() == (src / "held_back_school_0000029.csv").read_bytes()
