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
    assert shown["unknown_datasets"] == [{"dataset": "gone", "landing": 1, "staging": 0, "rejects": 0, "downloads": 1}]
    text = run_script("status.py", env=env, check=0).stdout
    assert "gone: not in DATASET_CONFIG, its folders hold landing 1, downloads 1; remove them with: " in text
    record = tmp_path / "data" / "downloads" / "gone.json"
    assert (tmp_path / "data" / "landing" / "gone").exists() and record.exists(), "status alone removes nothing"
    removed = run_script("status.py", "--remove-unknown", env=env, check=0)
    assert removed.stdout.strip() == (
        "removed the landing, staging and rejects folders and the last-download record of gone "
        "(no longer in DATASET_CONFIG)"
    )
    assert not (tmp_path / "data" / "landing" / "gone").exists()
    assert not record.exists(), "a dataset added again under this name must not be compared with the old download"
    assert (tmp_path / "data" / "downloads" / "kept.json").exists()
    assert list((tmp_path / "data" / "landing" / "kept").iterdir()), "a configured dataset's batch is kept"
    assert json.loads(run_script("status.py", "--json", env=env, check=0).stdout)["unknown_datasets"] == []


def test_a_removed_dataset_that_left_only_its_download_record_is_found_and_removed(script_env, tmp_path, stub):
    stub.set_rows("GEN_U", generate_rows("GEN_U", 20))
    config = write_dataset_config(tmp_path, {"gone": {"indicator": "GEN_U"}})
    run_script("start_scheduler.py", "--once", env=dict(script_env, DATASET_CONFIG_FILE=str(config)), check=0)
    record = tmp_path / "data" / "downloads" / "gone.json"
    assert record.exists() and not list((tmp_path / "data" / "landing" / "gone").iterdir())
    env = dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, {})))
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
    assert shown["unknown_datasets"] == [{"dataset": "gone", "landing": 0, "staging": 0, "rejects": 0, "downloads": 1}]
    run_script("status.py", "--remove-unknown", env=env, check=0)
    assert not record.exists()
