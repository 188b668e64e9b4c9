"""The quality gates (Great Expectations Core) and the validation report.

Great Expectations logs hundreds of INFO lines per validation (and at import); at WARNING its own logging
leaves the gate's summary at the top of the task log. Set here, before any module of this package imports it.
"""

import logging

logging.getLogger("great_expectations").setLevel(logging.WARNING)
