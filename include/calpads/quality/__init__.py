"""The quality gates (Great Expectations Core) and the validation report.

Great Expectations logs hundreds of INFO lines per validation (and at import); at WARNING its own logging
leaves the gate's summary at the top of the task log. Set here, before any module of this package imports it.
One of its modules (great_expectations.data_context.types.base) sets its own logger to INFO when imported,
so that logger also gets a filter, which a later setLevel does not undo.
"""

import logging


def _warnings_and_above(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


logging.getLogger("great_expectations").setLevel(logging.WARNING)
logging.getLogger("great_expectations.data_context.types.base").addFilter(_warnings_and_above)
