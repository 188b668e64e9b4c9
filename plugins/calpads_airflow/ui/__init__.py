"""The CALPADS page of the Airflow UI (calpads_ui_plugin): what to upload tonight, read-only."""
