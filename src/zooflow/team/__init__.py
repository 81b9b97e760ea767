"""Team mode: the servers a team shares (PostgreSQL, MLflow, Prefect) on one host."""
