"""The staging model: every SIS source stages the same contract tables, which every builder reads.

contract (the staged tables), store (StagedTables: Parquet in the run's work folder), protocols
(SourceAdapter, Builder, Built), sql_adapter and api_adapter. See docs/sis-sources.md, "Data path".
"""
