-- The pipeline's own database (staging tables, submission history): the calpads_store connection.
-- Runs once, when the PostgreSQL volume is first created (docker-compose.yaml, service postgres).
CREATE DATABASE calpads_store OWNER airflow;
