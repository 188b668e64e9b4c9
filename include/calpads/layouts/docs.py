"""Generate docs/layouts.md from the layout YAMLs (one section per record type).

    python -m calpads.layouts.docs            # rewrite docs/layouts.md
    python -m calpads.layouts.docs --check    # exit 1 when docs/layouts.md is out of date

tests/unit/test_layout_docs.py runs the check, so the page never drifts from the layouts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calpads.layouts import Layout, available_layouts, code_sets, load_layout

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "layouts.md"


def _cell(text: object) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def _section(layout: Layout) -> list[str]:
    raw = layout.raw
    keys = set(layout.operational_keys)
    unconfirmed = [f for f in layout.fields if not f.confirmed]
    out = [
        f"## {layout.record_type} – {layout.title}",
        "",
        f"- Processing: **{layout.processing}**; level: **{layout.level}**; fields: {len(layout.fields)}",
        f"- Specification version: {raw.get('spec_version', 'not stated')}",
        f"- Builder: `{raw.get('builder', 'calpads.extracts.sprg:build')}`; SIS assets read: "
        f"{', '.join(raw.get('inputs') or []) or 'see calpads.assets.DEFAULT_INPUTS'}",
        f"- Operational keys: {', '.join(f'`{k}`' for k in layout.operational_keys)}; every other field but "
        "the transaction type is updatable",
        f"- Unconfirmed fields ({len(unconfirmed)}): "
        + (", ".join(f"{f.number} {f.name}" for f in unconfirmed) or "none"),
        "",
        "| # | Name | Column | Max | Type | Req | Code set | Key | Confirmed | Source | Derivation / required rule |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in layout.fields:
        code = f.code_set or (f"fixed `{f.fixed}`" if f.fixed else "")
        if f.code_set and not code_sets()[f.code_set].get("confirmed", True):
            code += " (list unconfirmed)"
        note = "; ".join(x for x in (f.derivation, f.required_rule and f"required: {f.required_rule}") if x)
        out.append("| " + " | ".join(_cell(v) for v in (
            f.number, f.name, f"`{f.column}`", f.max_length, f.type, "Y" if f.required else "", code,
            "key" if f.column in keys else "", "yes" if f.confirmed else "**UNCONFIRMED**", f.source, note,
        )) + " |")
    return [*out, ""]


def render() -> str:
    lines = [
        "# CALPADS record layouts",
        "",
        "Generated from `include/calpads/layouts/*.yaml` by `python -m calpads.layouts.docs`; do not edit by hand.",
        "The layouts drive the writer (field order), the quality suites' field-level expectations",
        "(`python -m calpads.quality.suite_builder`) and this page. **UNCONFIRMED** = no official CALPADS",
        "source confirms the field's number, name or length (the source column names what does).",
        "",
    ]
    for rt in available_layouts():
        lines += _section(load_layout(rt))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", type=Path, default=DOC_PATH)
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is out of date: run python -m calpads.layouts.docs", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
