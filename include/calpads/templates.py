"""The one Jinja2 set-up every generated page and email body uses: template files from a package's ``templates/``
folder, autoescaped, each printed value escaped as ``html.escape`` does (quotes too) and None/NaN printed blank.

Pages are written from templates, never concatenated from strings, so that no value (a Local Record ID, a
school code, a path, a vendor's message) can add markup. See https://jinja.palletsprojects.com/en/stable/api/
(autoescaping, ``finalize``).
"""

from __future__ import annotations

import html
import math
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup


def text(value: Any) -> str:
    """A value as printed on a page: None and NaN blank, anything else its ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency of the package
        pass
    return str(value)


def escaped(value: Any) -> Markup:
    """``finalize`` of every environment: markup already safe stays, anything else is ``html.escape``d."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(text(value)))


@cache
def environment(package: str) -> Environment:
    """The environment for the templates of ``package`` (e.g. "calpads.quality": calpads/quality/templates/)."""
    return Environment(loader=PackageLoader(package, "templates"), autoescape=select_autoescape(["html"]),
                       finalize=escaped, trim_blocks=True, lstrip_blocks=True)


def render(package: str, name: str, **values: Any) -> str:
    """``name`` from ``package``'s templates/ folder, rendered with ``values``."""
    return environment(package).get_template(name).render(**values)
