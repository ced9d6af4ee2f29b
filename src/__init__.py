"""gho-etl: WHO GHO OData -> landing -> staging -> PostgreSQL."""
