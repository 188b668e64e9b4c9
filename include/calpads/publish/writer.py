"""Render records into the layout's caret-delimited files (docs/layouts.md, docs/architecture.md).

Files are rendered locally first (pyarrow's CSV writer: fast, and it refuses a
value containing the delimiter or a line break instead of quoting it, so a
caret in a name can never shift a record's fields), then copied to the publish
root by ``calpads.publish.target``.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from calpads.layouts import Layout
from calpads.private_files import open_private

BLANK_TYPES = (None, "", "A", "U", "R")


class StructuralCharacterError(ValueError):
    """A value would break the caret-delimited format; the gate should have held it back."""


@dataclass(frozen=True)
class RenderedFile:
    name: str
    kind: str          # full | AU | AU2 | AU3 ... | D
    records: int
    sha256: str
    bytes: int
    local_path: str

    def manifest_entry(self) -> dict:
        d = asdict(self)
        d.pop("local_path")
        return d


def base_name(layout: Layout, lea: str, academic_year: str) -> str:
    return f"{layout.record_type}_{lea}_{academic_year}"


def split_kinds(records: pd.DataFrame | pa.Table, layout: Layout) -> pd.Series:
    """The file each record goes to besides the full file: D for deletes; AU,
    AU2, AU3 ... for the others, by the rank of the record among the student's
    records with the same split key (e.g. the same program code), in file order."""
    if isinstance(records, pa.Table):   # only the columns the split reads, as text
        records = pd.DataFrame({c: records[c].to_pandas().astype(object) for c in
                                dict.fromkeys(["transaction_type", *layout.split_duplicates_by])})
    is_delete = records["transaction_type"].fillna("").eq("D")
    kinds = pd.Series("D", index=records.index, dtype="object")
    au = records[~is_delete]
    if layout.split_duplicates_by and len(au):
        rank = (au.groupby(list(layout.split_duplicates_by), sort=False, dropna=False).cumcount() + 1).to_numpy()
        names = np.array(["AU"] + [f"AU{r}" for r in range(2, int(rank.max()) + 1)], dtype=object)
        kinds.loc[au.index] = names[rank - 1]
    else:
        kinds.loc[au.index] = "AU"
    return kinds


def render_files(records: pd.DataFrame | pa.Table, layout: Layout, out_dir: Path, name: str) -> list[RenderedFile]:
    """Write the full file and its split files into out_dir; records (a frame, or Arrow text as the work file
    holds them) must already be in file order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Arrow strings (no per-value Python objects); the split files are Arrow filters of it.
    table = pa.table({c: _text_column(records, c) for c in layout.columns})
    # Each file's sha256 is worked out by a thread while the next file is written (both release the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="calpads-sha256") as hasher:
        written = [_write(table, out_dir, f"{name}.txt", "full", hasher)]
        if layout.processing != "replacement":   # replacement: one file, no transaction types, no _AU/_D split
            kinds = split_kinds(records, layout).to_numpy(dtype=object)

            def order(kind: str) -> tuple[int, int]:
                return (1, 0) if kind == "D" else (0, int(kind[2:] or 1))

            for kind in sorted(set(kinds), key=order):
                written.append(_write(table.filter(pa.array(kinds == kind)), out_dir, f"{name}_{kind}.txt", kind,
                                      hasher))
        return [file.result() for file in written]


def _text_column(records: pd.DataFrame | pa.Table, column: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(records, pa.Table):
        return records[column].cast(pa.string())   # a column without a value (null type) too
    return pa.array(records[column], type=pa.string(), from_pandas=True)


def _write(arrow: pa.Table, out_dir: Path, file_name: str, kind: str,
           hasher: ThreadPoolExecutor) -> Future[RenderedFile]:
    path = out_dir / file_name
    # Owner-only (0600) before the first byte: the writer opens the existing file (keeping its mode) to fill it.
    open_private(path).close()
    try:
        pacsv.write_csv(arrow, path, pacsv.WriteOptions(include_header=False, delimiter="^", quoting_style="none"))
    except pa.ArrowInvalid:
        path.unlink(missing_ok=True)
        # "from None": pyarrow's message quotes the offending value, which may be a student's name.
        raise StructuralCharacterError(
            f"{file_name}: a value contains a caret or a line break; refusing to write a file whose "
            "records would have the wrong number of fields"
        ) from None
    return hasher.submit(_rendered, path, kind, arrow.num_rows)


def _rendered(path: Path, kind: str, records: int) -> RenderedFile:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return RenderedFile(path.name, kind, records, digest.hexdigest(), path.stat().st_size, str(path))
