"""The caret-delimited writer and the file split (contract §3), on hand-made records."""

import hashlib
import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calpads.layouts import load_layout
from calpads.publish import target
from calpads.publish.writer import StructuralCharacterError, render_files

LAYOUT = load_layout("SPRG")


def record(student: str, program: str, rid: str, tx=None, service=None, last="Lee") -> dict:
    r = dict.fromkeys(LAYOUT.columns)
    r.update(record_type="SPRG", transaction_type=tx, local_record_id=rid, reporting_lea="1234567",
             school_of_attendance="7654321", academic_year_id="2025-2026", ssid="1234567890",
             local_student_id=student, legal_first_name="Ann", legal_last_name=last, birth_date="20150102",
             gender_code="F", program_code=program, membership_code="3", membership_start_date="20250901",
             service_code=service)
    return r


@pytest.mark.parametrize("as_work_file", [False, True], ids=["frame", "arrow"])
def test_split_into_full_au_au2_and_d(tmp_path, as_work_file):
    recs = pd.DataFrame([
        record("S1", "122", "1.9.08", service="08"),
        record("S1", "122", "1.9.09", service="09"),
        record("S1", "122", "1.9.10", service="10"),
        record("S1", "101", "1.7"),
        record("S2", "101", "2.8"),
        record("S3", "108", "3.4", tx="D"),
    ])
    if as_work_file:   # as the publish stage reads the diff's work file: Arrow text, a column without a value null
        path = tmp_path / "diffed.parquet"
        recs.to_parquet(path, index=False)
        recs = pq.read_table(path, columns=LAYOUT.columns)
        assert pa.types.is_null(recs["cpa_id"].type)
    files = {f.kind: f for f in render_files(recs, LAYOUT, tmp_path, "SPRG_1234567_2025-2026")}
    assert set(files) == {"full", "AU", "AU2", "AU3", "D"}
    assert files["full"].name == "SPRG_1234567_2025-2026.txt"
    assert files["AU2"].name == "SPRG_1234567_2025-2026_AU2.txt"
    read = {k: (tmp_path / f.name).read_text().splitlines() for k, f in files.items()}
    # the second and third 122 records of S1 go to AU2 and AU3; everything else to AU / D
    assert [line.split("^")[2] for line in read["AU"]] == ["1.9.08", "1.7", "2.8"]
    assert [line.split("^")[2] for line in read["AU2"]] == ["1.9.09"]
    assert [line.split("^")[2] for line in read["AU3"]] == ["1.9.10"]
    assert [line.split("^")[:3] for line in read["D"]] == [["SPRG", "D", "3.4"]]
    assert sum(f.records for k, f in files.items() if k != "full") == files["full"].records == 6
    for f in files.values():
        data = (tmp_path / f.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256
        for line in data.decode().splitlines():
            assert line.count("^") == 24  # 25 fields, no trailing delimiter
            assert not line.endswith("^^^^^^^^^^^^^^^^^^^^^^^^")


def test_blank_fields_are_empty_and_no_quotes(tmp_path):
    recs = pd.DataFrame([record("S1", "101", "1.7", last="O'Neil Smith")])
    f = render_files(recs, LAYOUT, tmp_path, "x")[0]
    line = (tmp_path / f.name).read_text().rstrip("\n")
    fields = line.split("^")
    assert fields[1] == "" and fields[9] == "O'Neil Smith" and fields[17] == ""
    assert '"' not in line


@pytest.mark.parametrize("bad", ["Ann^Marie", "Ann\nMarie", "Ann\rMarie"])
def test_a_caret_or_line_break_never_reaches_a_file(tmp_path, bad):
    recs = pd.DataFrame([record("S1", "101", "1.7", last=bad)])
    with pytest.raises(StructuralCharacterError) as info:
        render_files(recs, LAYOUT, tmp_path, "x")
    assert "Marie" not in str(info.value)  # the message never quotes student data
    assert not list(tmp_path.glob("*.txt"))


def test_put_file_is_atomic_and_not_world_readable(tmp_path):
    from airflow.sdk import ObjectStoragePath

    src = tmp_path / "local.txt"
    src.write_text("a^b\n")
    root = ObjectStoragePath(f"file://{tmp_path}/pub")
    folder = target.run_folder(root, "2025-2026", "SPRG", "manual__2026-01-01T00:00:00+00:00")
    target.ensure_folder(folder)
    (tmp_path / "pub/2025-2026/SPRG/manual__2026-01-01T00:00:00+00:00/stale_AU2.txt").write_text("old")
    target.remove_stale(folder, ["SPRG.txt"])
    target.put_file(src, folder, "SPRG.txt")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["SPRG.txt"]
    mode = stat.S_IMODE(os.stat(f"{tmp_path}/pub/2025-2026/SPRG/manual__2026-01-01T00:00:00+00:00/SPRG.txt").st_mode)
    assert mode & stat.S_IROTH == 0 and mode & stat.S_IWOTH == 0
