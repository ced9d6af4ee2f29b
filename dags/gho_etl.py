"""Airflow DAGs of gho-etl, one per enabled dataset: copy this file into Airflow's dags/ folder.

GHO_ETL_HOME is the gho-etl checkout the workers run (default: the folder above this file's, right
when the file stays in the checkout). Settings come from the workers' environment, as for the scripts:
DATABASE_URL, GHO_API_BASE_URL, GHO_DATA_DIR, DATASET_CONFIG_FILE... (README's Configuration).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.environ.get("GHO_ETL_HOME") or str(Path(__file__).resolve().parents[1]))

from src.integrations.airflow_dags import build_dags  # noqa: E402

globals().update(build_dags())
