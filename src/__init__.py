"""gho-etl: WHO GHO OData -> landing -> staging -> PostgreSQL."""

from src import process_tuning

process_tuning.apply()  # before anything imports numpy (process_tuning says why)
