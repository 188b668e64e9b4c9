"""Record layouts as data: one YAML file per CALPADS record type."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Field:
    number: str
    name: str
    column: str
    max_length: int
    type: str
    required: bool = False
    code_set: str | None = None
    fixed: str | None = None
    pii: bool = False
    confirmed: bool = True
    source: str | None = None          # where the field's number/name/length come from
    derivation: str | None = None      # how the builder fills it ("blank: ..." when the SIS cannot)
    required_rule: str | None = None   # a conditional requirement, in words (checked by a business rule)
    fix_in: str | None = None          # where a coordinator corrects the value (report / rule text)


@dataclass(frozen=True)
class Layout:
    record_type: str
    title: str
    processing: str
    level: str
    fields: tuple[Field, ...]
    operational_keys: tuple[str, ...]
    sort_by: tuple[str, ...]
    split_duplicates_by: tuple[str, ...] = ()
    submissions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    never_extracted: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def updatable_fields(self) -> list[str]:
        """Every field that is not an operational key nor the transaction type."""
        skip = set(self.operational_keys) | {"record_type", "transaction_type"}
        return [f.column for f in self.fields if f.column not in skip]

    @property
    def pii_columns(self) -> list[str]:
        return [f.column for f in self.fields if f.pii]

    def field(self, column: str) -> Field:
        for f in self.fields:
            if f.column == column:
                return f
        raise KeyError(column)


@cache
def code_sets() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("code_sets.yaml").read_text()
    return yaml.safe_load(text)


def code_set(name: str) -> list[str]:
    return list(code_sets()[name]["codes"])


def _extra_dirs() -> list[Path]:
    """CALPADS_LAYOUTS_DIR (os.pathsep-separated folders): layouts found there come before the packaged ones,
    so a district (or a test) adds a record type without touching the package."""
    return [Path(p) for p in os.environ.get("CALPADS_LAYOUTS_DIR", "").split(os.pathsep) if p]


def _layout_text(record_type: str) -> str:
    name = f"{record_type.lower()}.yaml"
    for folder in _extra_dirs():
        if (folder / name).is_file():
            return (folder / name).read_text()
    return resources.files(__package__).joinpath(name).read_text()


@cache
def load_layout(record_type: str) -> Layout:
    raw = yaml.safe_load(_layout_text(record_type))
    fields = tuple(Field(**f) for f in raw["fields"])
    layout = Layout(
        record_type=raw["record_type"],
        title=raw["title"],
        processing=raw["processing"],
        level=raw["level"],
        fields=fields,
        operational_keys=tuple(raw.get("operational_keys", [])),
        sort_by=tuple(raw.get("sort_by", [])),
        split_duplicates_by=tuple(raw.get("split_duplicates_by", [])),
        submissions={k: tuple(v) for k, v in raw.get("submissions", {}).items()},
        never_extracted=tuple(raw.get("never_extracted", [])),
        raw=raw,
    )
    columns = layout.columns
    for key in (*layout.operational_keys, *layout.sort_by, *layout.split_duplicates_by):
        if key not in columns:
            raise ValueError(f"layout {record_type}: {key!r} is not a field column")
    return layout


def available_layouts() -> list[str]:
    names = [p.name for p in resources.files(__package__).iterdir()]
    for folder in _extra_dirs():
        names += [p.name for p in folder.glob("*.yaml")]
    return sorted({n[:-5].upper() for n in names if n.endswith(".yaml") and n != "code_sets.yaml"})
