"""The Store contract on S3 (`src.storage.s3`), against moto's S3 server on 127.0.0.1 over real HTTP."""

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.contracts import landing
from src.errors import ConfigError, StorageError, StorageUnavailable
from src.faultpoints import ENV_VARIABLE
from src.storage.disk import atomic_path
from src.storage.s3 import S3Store
from tests.helpers import PROJECT_ROOT, run_script
from tests.s3_server import CREDENTIALS, aws_env, bucket_fixture, keys, s3_endpoint_fixture  # noqa: F401

BATCH = "landing/ds/0000000001-20261201T000000000000Z"


@pytest.fixture
def store(bucket, s3_endpoint, tmp_path, monkeypatch):
    for name, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    return S3Store(f"s3://{bucket[0]}/team/gho", tmp_path / "scratch")


def _put_many(s3, name, object_keys):
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=name, Key=key, Body=b"x"), object_keys))


def test_files_appear_whole_under_the_prefix_and_read_back(store, bucket):
    name, s3 = bucket
    store.write_json(f"{BATCH}/request.json", {"indicator": "X"})
    store.write_bytes(f"{BATCH}/page-00001.json", b'{"value": []}')
    store.write_bytes("landing/ds/.own-file", b"")
    assert keys(s3, name) == sorted(
        f"team/gho/{k}" for k in (f"{BATCH}/request.json", f"{BATCH}/page-00001.json", "landing/ds/.own-file")
    )
    assert store.folders("landing/ds") == [BATCH.rsplit("/", 1)[1]] and store.files("landing/ds") == []
    assert store.files(BATCH) == ["page-00001.json", "request.json"]
    assert store.read_json(f"{BATCH}/request.json") == {"indicator": "X"}
    assert store.exists(f"{BATCH}/request.json") and not store.exists(f"{BATCH}/manifest.json")
    with pytest.raises(FileNotFoundError):
        store.read_bytes(f"{BATCH}/manifest.json")
    assert store.describe(f"{BATCH}/request.json") == f"s3://{name}/team/gho/{BATCH}/request.json"
    store.delete(f"{BATCH}/page-00001.json")
    store.delete(f"{BATCH}/never-there.json")
    assert store.files(BATCH) == ["request.json"]
    assert store.folders("nothing/here") == [] and store.files("nothing/here") == []


def test_new_file_publishes_only_a_block_that_succeeds(store, bucket, tmp_path):
    name, s3 = bucket
    with pytest.raises(RuntimeError):
        with store.new_file("staging/ds/b1.parquet") as path:
            path.write_bytes(b"half")
            raise RuntimeError("killed half-way")
    assert keys(s3, name) == []
    with store.new_file("staging/ds/b1.parquet") as path:
        path.write_bytes(b"first version")
        with atomic_path(path) as replacement:  # as the transform rewrites a batch without its duplicates
            replacement.write_bytes(b"deduplicated")
    assert store.read_bytes("staging/ds/b1.parquet") == b"deduplicated"
    with store.local_file("staging/ds/b1.parquet") as local:
        assert local.read_bytes() == b"deduplicated"
    with pytest.raises(FileNotFoundError):
        with store.local_file("staging/ds/b2.parquet"):
            pass
    assert list((tmp_path / "scratch").iterdir()) == []  # scratch files go with their block


def test_listings_past_1000_keys_paginate_and_delete_tree_removes_them_all(store, bucket):
    name, s3 = bucket
    _put_many(s3, name, [f"team/gho/many/f{i:04d}/x" for i in range(1003)])
    _put_many(s3, name, [f"team/gho/flat/p{i:04d}" for i in range(1002)])
    assert store.folders("many") == [f"f{i:04d}" for i in range(1003)]
    assert store.files("flat") == [f"p{i:04d}" for i in range(1002)]
    store.delete_tree("many")
    store.delete_tree("flat")
    store.delete_tree("never/there")
    assert keys(s3, name) == []


CRASHING_DELETE = """
import sys
from pathlib import Path
from src.storage.s3 import S3Store
S3Store(sys.argv[1], Path(sys.argv[2])).delete_tree(sys.argv[3])
"""


def _killed_delete_tree(s3_endpoint, url, tmp_path, prefix):
    env = dict(os.environ, **aws_env(s3_endpoint), **{ENV_VARIABLE: "storage.tree_renamed"})
    code = [sys.executable, "-c", CRASHING_DELETE, url, str(tmp_path / "s"), prefix]
    killed = subprocess.run(code, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def test_a_batch_killed_half_deleted_is_never_listed_and_the_sweep_finishes_it(store, bucket, s3_endpoint, tmp_path):
    name, s3 = bucket
    batch_id = BATCH.rsplit("/", 1)[1]
    for file in ("request.json", "progress.json", "page-00001.json", landing.MANIFEST):
        store.write_bytes(f"{BATCH}/{file}", b"{}")
    assert landing.complete_batches(store, "ds") == [batch_id]
    _killed_delete_tree(s3_endpoint, f"s3://{name}/team/gho", tmp_path, BATCH)
    assert f"team/gho/{BATCH}/{landing.MANIFEST}" in keys(s3, name)  # every object is still there ...
    assert landing.batch_ids(store, "ds") == [] and landing.complete_batches(store, "ds") == []  # ... unlisted
    assert store.sweep("landing/ds") == 1
    assert keys(s3, name) == []


def test_finishing_a_killed_delete_spares_what_was_written_under_the_name_after_it(
    store, bucket, s3_endpoint, tmp_path
):
    name, s3 = bucket
    store.write_bytes("landing/gone/b1/page-00001.json", b"{}")
    _killed_delete_tree(s3_endpoint, f"s3://{name}/team/gho", tmp_path, "landing/gone")
    assert store.folders("landing") == []
    store.write_bytes("landing/gone/b2/request.json", b"{}")  # the dataset added again, before any sweep
    assert store.sweep("landing/gone") == 1
    assert keys(s3, name) == ["team/gho/landing/gone/b2/request.json"]
    assert store.folders("landing") == ["gone"]


def test_the_sweep_aborts_uploads_a_killed_writer_left(store, bucket):
    name, s3 = bucket
    s3.create_multipart_upload(Bucket=name, Key="team/gho/staging/ds/b1.parquet")
    s3.create_multipart_upload(Bucket=name, Key="team/gho/staging/other/b1.parquet")
    assert store.sweep("staging/ds") == 1
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=name).get("Uploads", [])] == [
        "team/gho/staging/other/b1.parquet"
    ]


def test_the_sweep_forgets_scratch_files_of_dead_processes_only(store, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (scratch / f".tmp-{dead.stdout.strip()}-abc").write_bytes(b"left by a killed transform")
    (scratch / f".tmp-{os.getpid()}-def").write_bytes(b"in use")
    assert store.sweep("staging/ds") == 1
    assert [p.name for p in scratch.iterdir()] == [f".tmp-{os.getpid()}-def"]


def test_a_missing_bucket_is_a_configuration_error_and_a_dead_endpoint_is_transient(s3_endpoint, tmp_path, monkeypatch):
    for variable, value in aws_env(s3_endpoint).items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="bucket 'no-such-bucket' does not exist"):
        S3Store("s3://no-such-bucket", tmp_path).check()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(StorageUnavailable, match="cannot reach the S3 endpoint") as caught:
        S3Store("s3://any-bucket", tmp_path).check()
    assert caught.value.transient


@pytest.mark.parametrize(
    "url,endpoint,code,message",
    [
        ("http://bucket/x", None, 2, "GHO_HANDOFF_URL='http://bucket/x' must be s3://bucket or s3://bucket/prefix"),
        ("s3://Bad_Bucket", None, 2, "must be s3://bucket"),
        ("s3://no-such-bucket/gho", None, 2, "bucket 'no-such-bucket' does not exist"),
        ("s3://any-bucket/gho", "http://127.0.0.1:9", 1, "cannot reach the S3 endpoint"),
    ],
)
def test_scripts_refuse_a_bad_handoff_url_in_one_line(script_env, s3_endpoint, url, endpoint, code, message):
    env = dict(script_env, **aws_env(s3_endpoint), GHO_HANDOFF_URL=url)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = run_script("start_extract.py", env=env, check=code)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert CREDENTIALS["aws_secret_access_key"] not in result.stdout + result.stderr


def test_a_handoff_on_s3_needs_a_shared_database(script_env, s3_endpoint):
    env = dict(script_env, **aws_env(s3_endpoint), GHO_HANDOFF_URL="s3://any-bucket")
    del env["DATABASE_URL"]
    result = run_script("start_transform.py", env=env, check=2)
    assert "GHO_HANDOFF_URL needs DATABASE_URL" in result.stderr


class _RefusingS3(BaseHTTPRequestHandler):
    """An S3 endpoint answering every request with one error: `status` and S3 error `code`."""

    status, code = 400, "InvalidArgument"

    def _answer(self):
        body = f"<Error><Code>{self.code}</Code><Message>no</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "status, code, transient",
    [
        (400, "InvalidArgument", False),
        (400, "AuthorizationHeaderMalformed", False),
        (503, "SlowDown", True),
        (500, "X", True),
    ],
)
def test_only_an_s3_answer_a_later_try_may_change_is_transient(tmp_path, monkeypatch, status, code, transient):
    """Airflow retries what our exception tree calls transient: a wrong region or a bad argument is not."""
    handler = type("Refusing", (_RefusingS3,), {"status": status, "code": code})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name, value in aws_env(f"http://127.0.0.1:{server.server_address[1]}").items():
            monkeypatch.setenv(name, value)
        store = S3Store("s3://team-bucket/gho", tmp_path / "scratch")
        with pytest.raises((StorageError, StorageUnavailable)) as raised:
            store.write_bytes("landing/x.json", b"{}")
        assert raised.value.transient is transient and CREDENTIALS["aws_secret_access_key"] not in str(raised.value)
    finally:
        server.shutdown()
