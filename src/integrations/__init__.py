"""Integrations with orchestrators outside gho-etl (Airflow); our own scheduler needs none of them."""
