"""Landing pages are stored as LZ4 frames of the answers exactly as they arrived (src/contracts/landing.py).

The page's sha256 in the manifest is of the answer itself, plain pages of a batch
landed by an earlier version are still read, and a damaged frame is a clear
error that keeps the page.
"""

import hashlib
import json

from src.contracts import landing
from src.contracts.layout import Layout
from src.extract.phase import extract_dataset
from src.transform.phase import transform_dataset
from tests.helpers import run_script
from utils.gho_samples import generate_rows

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"


def _landed_batch(make_settings, stub, rows):
    stub.set_rows(INDICATOR, rows)
    settings = make_settings(page_size=500)
    extract_dataset(settings, settings.datasets[DATASET])
    [batch] = [p for p in Layout(settings.data_dir).landing(DATASET).iterdir() if p.is_dir()]
    return settings, batch


def test_a_page_is_an_lz4_frame_of_the_answer_as_it_arrived(make_settings, stub):
    rows = generate_rows(INDICATOR, 1200)
    settings, batch = _landed_batch(make_settings, stub, rows)
    manifest = json.loads((batch / landing.MANIFEST).read_text())
    files = [page["file"] for page in manifest["pages"]]
    assert files == ["page-00000.json.lz4", "page-00001.json.lz4", "page-00002.json.lz4"]
    answers = []
    for page in manifest["pages"]:
        stored = (batch / page["file"]).read_bytes()
        assert stored[:4] == b"\x04\x22\x4d\x18"  # the LZ4 frame format: `lz4 -dc` reads it
        answer = landing.unpack_page(stored)
        assert hashlib.sha256(answer).hexdigest() == page["sha256"]  # of the answer, not of the file
        assert len(stored) * 3 < len(answer)
        answers.append(json.loads(answer))
    assert [row["Id"] for answer in answers for row in answer["value"]] == [row["Id"] for row in rows]


def test_a_batch_of_plain_pages_landed_by_an_earlier_version_is_transformed(make_settings, stub):
    settings, batch = _landed_batch(make_settings, stub, generate_rows(INDICATOR, 1200))
    manifest = json.loads((batch / landing.MANIFEST).read_text())
    for page in manifest["pages"]:
        packed = batch / page["file"]
        plain = page["file"].removesuffix(".lz4")
        (batch / plain).write_bytes(landing.unpack_page(packed.read_bytes()))
        packed.unlink()
        page["file"] = plain
    (batch / landing.MANIFEST).write_text(json.dumps(manifest))
    [result] = transform_dataset(settings, settings.datasets[DATASET])
    assert result.rows_out == 1200


def test_a_damaged_frame_fails_clearly_and_keeps_the_page(script_env, stub, tmp_path):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 30))
    run_script("start_extract.py", env=script_env, check=0)
    [batch] = [p for p in Layout(tmp_path / "data").landing(DATASET).iterdir() if p.is_dir()]
    page = batch / "page-00000.json.lz4"
    stored = page.read_bytes()
    page.write_bytes(stored[:20] + bytes(b ^ 0xFF for b in stored[20:40]) + stored[40:])
    result = run_script("start_transform.py", env=script_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "landing page" in error and "page-00000.json.lz4" in error and "corrupted" in error
    assert page.read_bytes() != stored
