"""Student-level CALPADS fields shared by the SENR, STAS and LEAP builders (the same derivation as SPRG's)."""

from __future__ import annotations

import pandas as pd

from calpads.extracts.common import blank_to_none, ccyymmdd


def student_fields(students: pd.DataFrame) -> pd.DataFrame:
    """student_id -> ssid, local_student_id, legal names (legal, else preferred), birth date, legal gender
    (legal, else preferred), and the preferred names (for SENR's alias fields)."""
    legal_first = blank_to_none(students["legalfirstname"])
    legal_last = blank_to_none(students["legallastname"])
    first, last = blank_to_none(students["first_name"]), blank_to_none(students["last_name"])
    return pd.DataFrame({
        "student_id": students["student_id"].astype("int64"),
        "ssid": blank_to_none(students["ssid"]),
        "local_student_id": blank_to_none(students["student_number"]),
        "legal_first_name": legal_first.fillna(first),
        "legal_last_name": legal_last.fillna(last),
        "alias_first_name": first.where(legal_first.notna() & (legal_first != first), None),
        "alias_last_name": last.where(legal_last.notna() & (legal_last != last), None),
        "birth_date": ccyymmdd(students["dob"]),
        "gender_code": blank_to_none(students["legalgender"]).fillna(blank_to_none(students["gender"])),
        "ctx_preferred_gender": blank_to_none(students["gender"]),
    })


def finish(records: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Layout columns then ctx_ columns, every value a str or None."""
    records = records[[*columns, *[c for c in records.columns if c.startswith("ctx_") and c not in columns]]]
    return records.astype("object").where(records.notna(), None)
