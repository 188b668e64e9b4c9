"""StagedTables (calpads.staging.store): owner-only, whole-or-nothing Parquet files, each table once per attempt."""

from __future__ import annotations

import stat

import pyarrow as pa
import pytest

from calpads.failures import WorkFolderError
from calpads.staging import contract
from calpads.staging.api_adapter import rows_to_arrow
from calpads.staging.store import StagedTables


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tables_are_private_written_once_and_read_back_typed(tmp_path):
    staged = StagedTables(tmp_path)
    staged.reset()
    rows = [{"id": "7", "studentid": 3, "schoolid": "100", "grade_level": None, "entrydate": "2025-08-13",
             "exitdate": None, "state_excludefromreporting": 0}]
    table, missing = rows_to_arrow(contract.REENROLLMENTS, rows)
    assert missing == list(contract.ENROLLMENT_CODES)           # no row carries them: the SIS lacks them
    assert staged.write(contract.REENROLLMENTS, table, missing_columns=missing) == 1
    assert mode(staged.folder) == 0o700 and mode(staged.path(contract.REENROLLMENTS)) == 0o600
    frame = staged.frame(contract.REENROLLMENTS)
    assert frame.loc[0, "id"] == 7 and frame.loc[0, "entrydate"] == "2025-08-13" and frame["exitdate"].isna().all()
    assert staged.missing_columns(contract.REENROLLMENTS) == tuple(sorted(contract.ENROLLMENT_CODES))
    with pytest.raises(RuntimeError, match="already written"):
        staged.write(contract.REENROLLMENTS, table)
    assert not list(staged.folder.glob(".*partial"))


def test_a_failed_write_leaves_no_table(tmp_path):
    staged = StagedTables(tmp_path)
    staged.reset()
    schema = contract.schema(contract.PREFS)

    def batches():
        yield pa.RecordBatch.from_pylist([{"id": 1, "name": "districtnumber", "value": "1", "schoolid": 0}], schema)
        raise OSError("disk full")

    with pytest.raises((OSError, WorkFolderError)):
        staged.write(contract.PREFS, batches(), schema)
    assert not staged.has(contract.PREFS) and not list(staged.folder.iterdir())


def test_a_write_error_stops_the_read_and_leaves_no_table(tmp_path):
    """The batches are written in a thread of their own: its error is raised here, and the source is not read to
    its end."""
    staged = StagedTables(tmp_path)
    staged.reset()
    schema = contract.schema(contract.PREFS)
    read = []

    def batches():
        for i in range(50):
            read.append(i)
            yield pa.RecordBatch.from_pylist([{"id": i, "name": "x", "value": "1", "schoolid": 0}], schema)
            if i == 0:   # a batch of another schema: the Parquet writer refuses it
                yield pa.RecordBatch.from_pylist([{"other": 1}])

    with pytest.raises((ValueError, pa.ArrowInvalid, WorkFolderError)):
        staged.write(contract.PREFS, batches(), schema)
    assert not staged.has(contract.PREFS) and not list(staged.folder.iterdir()) and len(read) < 50


def test_batches_are_staged_in_their_order(tmp_path):
    staged = StagedTables(tmp_path)
    staged.reset()
    schema = contract.schema(contract.PREFS)
    rows = [{"id": i, "name": f"n{i}", "value": str(i), "schoolid": i % 3} for i in range(1000)]
    batches = (pa.RecordBatch.from_pylist(rows[i:i + 7], schema) for i in range(0, 1000, 7))
    assert staged.write(contract.PREFS, batches, schema) == 1000
    assert staged.table(contract.PREFS).to_pylist() == rows


def test_reset_clears_an_earlier_attempt(tmp_path):
    staged = StagedTables(tmp_path)
    staged.reset()
    staged.write(contract.PREFS, pa.Table.from_pylist([], contract.schema(contract.PREFS)))
    again = StagedTables(tmp_path)
    again.reset()
    assert not again.has(contract.PREFS) and again.counts() == {}


def test_spill_file_is_owner_only_reads_back_what_was_written_and_is_removed(tmp_path) -> None:
    from calpads.staging.store import SpillFile

    spill = SpillFile(tmp_path / ".records.arrow")
    with pytest.raises(RuntimeError, match="nothing was written"):
        spill.read()
    parts = [pa.table({"id": pa.array(["a", None], pa.string()), "n": pa.array([1, 2])}),
             pa.table({"id": pa.array(["c"], pa.string()), "n": pa.array([3])})]
    for part in parts:
        spill.write(part)
    assert mode(tmp_path / ".records.arrow") == 0o600
    assert spill.read().equals(pa.concat_tables(parts))
    spill.remove()
    assert not (tmp_path / ".records.arrow").exists()
