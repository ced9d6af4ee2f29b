"""Landing left by a dataset removed from the configuration is reported, and removed on request only."""

import json

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows


def test_folders_of_a_removed_dataset_are_reported_and_removable(script_env, tmp_path, stub):
    stub.set_rows("GEN_U", generate_rows("GEN_U", 20))
    both = write_dataset_config(tmp_path, {"kept": {"indicator": "GEN_U"}, "gone": {"indicator": "GEN_U"}})
    run_script("start_extract.py", env=dict(script_env, DATASET_CONFIG_FILE=str(both)), check=0)
    only_kept = tmp_path / "kept.json"
    only_kept.write_text(json.dumps({"kept": {"indicator": "GEN_U"}}))
    env = dict(script_env, DATASET_CONFIG_FILE=str(only_kept))
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
    assert shown["unknown_datasets"] == [{"dataset": "gone", "landing": 1, "staging": 0, "rejects": 0}]
    text = run_script("status.py", env=env, check=0).stdout
    assert "gone: not in DATASET_CONFIG, its folders hold landing 1; remove them with: " in text
    assert (tmp_path / "data" / "landing" / "gone").exists(), "status alone removes nothing"
    removed = run_script("status.py", "--remove-unknown", env=env, check=0)
    assert removed.stdout.strip() == (
        "removed the landing, staging and rejects folders of gone (no longer in DATASET_CONFIG)"
    )
    assert not (tmp_path / "data" / "landing" / "gone").exists()
    assert list((tmp_path / "data" / "landing" / "kept").iterdir()), "a configured dataset's batch is kept"
    assert json.loads(run_script("status.py", "--json", env=env, check=0).stdout)["unknown_datasets"] == []
