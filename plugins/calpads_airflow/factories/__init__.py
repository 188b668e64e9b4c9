"""DAG factories: one module per DAG (its docs and its DAG definition, top to bottom) and, beside it, the
module of its task bodies (``*_tasks.py``: plain methods calling the domain functions of ``calpads``)."""
