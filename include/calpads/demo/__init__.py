"""The demo district: a generated PowerSchool-shaped SIS database (generator, cli),
the afterschool platform's CSV exports, a local mailbox and a run-locator for the demo."""

from __future__ import annotations

from typing import Any

__all__ = ["DemoSummary", "generate_district"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m calpads.demo.mailbox` does not import numpy/pandas.
    if name in __all__:
        from calpads.demo import generator

        return getattr(generator, name)
    raise AttributeError(name)
