"""S3 backup against a real S3 API over HTTP on 127.0.0.1 (moto in server mode), not patched boto3."""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

import boto3
import pytest

from tests.helpers import PROJECT_ROOT, run_script

moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, script_env, request):
    bucket = "backup-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]
    env = dict(
        script_env,
        S3_BUCKET=bucket,
        S3_PREFIX="nightly/",
        S3_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return env, client


def backup_tool(*args, env, check=None):
    return run_script("utils/s3_backup.py", *args, env=env, check=check)


def test_backup_list_restore_round_trip(s3_env, tmp_path):
    env, client = s3_env
    result = backup_tool("backup", env=env, check=0)
    assert result.stdout.startswith(f"backup: uploaded s3://{env['S3_BUCKET']}/nightly/gho-etl-")
    [line] = backup_tool("list", env=env, check=0).stdout.splitlines()
    key = line.split("\t")[0]
    target = tmp_path / "restored"
    restored = backup_tool("restore", key, "--to", str(target), env=env, check=0)
    assert "sha256 verified" in restored.stdout
    for relative in ("src/load/phase.py", "config/config.py", "README.md", ".env.example", "requirements.txt"):
        assert (target / relative).read_bytes() == (PROJECT_ROOT / relative).read_bytes()
    assert not (target / ".env").exists() and not (target / "data").exists() and not (target / "logs").exists()
    assert not list(target.rglob("__pycache__"))


def test_exclusions_and_include_landing(s3_env, tmp_path):
    env, _ = s3_env
    project = tmp_path / "project"
    for relative, text in {
        "src/app.py": "print(1)\n",
        ".env": "PGPASSWORD=secret\n",
        ".env.production": "PGPASSWORD=secret\n",
        ".env.example": "GHO_PAGE_SIZE=10000\n",
        "data/landing/ds/b1/page-00000.json": '{"value": []}',
        "data/staging/ds/b1.parquet": "x",
        "data/postgres/PG_VERSION": "16",
        "logs/gho_etl.jsonl": "{}",
        ".venv/bin/python": "",
        ".venv-airflow/pyvenv.cfg": "home = /usr/bin\n",  # a virtualenv of any name (make airflow-env's)
        ".venv-airflow/lib/python3.11/site-packages/airflow/__init__.py": "",
        "src/__pycache__/app.cpython-311.pyc": "",
    }.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)

    def restored_files(*flags):
        backup_tool("backup", "--root", str(project), *flags, env=env, check=0)
        key = backup_tool("list", env=env, check=0).stdout.split("\t")[0]
        target = tmp_path / key.rsplit("/", 1)[-1]
        backup_tool("restore", key, "--to", str(target), env=env, check=0)
        return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())

    assert restored_files() == [".env.example", "src/app.py"]
    assert restored_files("--include-landing") == [".env.example", "data/landing/ds/b1/page-00000.json", "src/app.py"]


def test_secret_files_are_never_backed_up(s3_env, tmp_path):
    env, _ = s3_env
    project = tmp_path / "project"
    secrets = [".envrc", ".pgpass", ".netrc", "deploy/server.pem", "deploy/private.key", "deploy/id_rsa"]
    secrets += ["deploy/id_ed25519.pub", "config/secrets.yaml", "config/credentials.json", "certs/client.p12"]
    for relative in ["src/app.py", ".env.example", *secrets]:
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text("PGPASSWORD=secret\n")
    backup_tool("backup", "--root", str(project), env=env, check=0)
    key = backup_tool("list", env=env, check=0).stdout.split("\t")[0]
    target = tmp_path / "restored"
    backup_tool("restore", key, "--to", str(target), env=env, check=0)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == [
        ".env.example",
        "src/app.py",
    ]


def test_restore_refuses_an_archive_that_unpacks_far_beyond_its_size(s3_env, tmp_path):
    env, client = s3_env
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo("zeros.bin")
        member.size = 100 << 20
        archive.addfile(member, io.BytesIO(bytes(member.size)))
    body = buffer.getvalue()
    key = "nightly/gho-etl-bomb.tar.gz"
    client.put_object(
        Bucket=env["S3_BUCKET"], Key=key, Body=body, Metadata={"sha256": hashlib.sha256(body).hexdigest()}
    )
    result = backup_tool("restore", key, "--to", str(tmp_path / "safe"), env=env)
    assert result.returncode == 1, result.stderr
    assert "unpacks to 104857600 bytes" in result.stderr and "--max-bytes" in result.stderr
    assert not list((tmp_path / "safe").rglob("*"))


def test_restore_refuses_non_empty_directory_unless_forced(s3_env, tmp_path):
    env, _ = s3_env
    backup_tool("backup", env=env, check=0)
    key = backup_tool("list", env=env, check=0).stdout.split("\t")[0]
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    refused = backup_tool("restore", key, "--to", str(target), env=env)
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    backup_tool("restore", key, "--to", str(target), "--force", env=env, check=0)
    assert (target / "keep.txt").read_text() == "mine" and (target / "README.md").exists()


def test_restore_rejects_members_that_escape(s3_env, tmp_path):
    env, client = s3_env
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"owned"
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    body = buffer.getvalue()
    key = "nightly/gho-etl-evil.tar.gz"
    client.put_object(
        Bucket=env["S3_BUCKET"], Key=key, Body=body, Metadata={"sha256": hashlib.sha256(body).hexdigest()}
    )
    result = backup_tool("restore", key, "--to", str(tmp_path / "safe"), env=env)
    assert result.returncode == 1
    assert "would escape" in result.stderr
    assert not (tmp_path / "escaped.txt").exists()


def test_restore_detects_checksum_mismatch(s3_env, tmp_path):
    env, client = s3_env
    key = "nightly/gho-etl-corrupt.tar.gz"
    client.put_object(Bucket=env["S3_BUCKET"], Key=key, Body=b"not what was recorded", Metadata={"sha256": "0" * 64})
    result = backup_tool("restore", key, "--to", str(tmp_path / "x"), env=env)
    assert result.returncode == 1 and "checksum mismatch" in result.stderr
    assert not (tmp_path / "x").exists()


def test_prune_keeps_newest(s3_env):
    env, _ = s3_env
    for _ in range(3):
        backup_tool("backup", env=env, check=0)
    before = [line.split("\t")[0] for line in backup_tool("list", env=env, check=0).stdout.splitlines()]
    assert len(before) == 3 and before == sorted(before, reverse=True)
    assert "kept 1, deleted 2" in backup_tool("prune", "--keep", "1", env=env, check=0).stdout
    after = [line.split("\t")[0] for line in backup_tool("list", env=env, check=0).stdout.splitlines()]
    assert after == before[:1]


def test_clear_errors(s3_env, tmp_path):
    env, _ = s3_env
    missing = backup_tool("list", env=dict(env, S3_BUCKET="no-such-bucket-here"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: bucket 'no-such-bucket-here' does not exist at {env['S3_ENDPOINT_URL']}"
    unset = backup_tool("list", env={k: v for k, v in env.items() if k != "S3_BUCKET"})
    assert unset.returncode == 1 and unset.stderr.startswith("error: S3_BUCKET is not set")
    unreachable = backup_tool("list", env=dict(env, S3_ENDPOINT_URL="http://127.0.0.1:9"))
    assert unreachable.returncode == 1
    assert unreachable.stderr.strip() == (
        "error: cannot reach the S3 endpoint http://127.0.0.1:9; check S3_ENDPOINT_URL and the network"
    )
    no_key = backup_tool("restore", "nightly/none.tar.gz", "--to", str(tmp_path / "n"), env=env)
    assert no_key.returncode == 1 and "no backup 'nightly/none.tar.gz'" in no_key.stderr


# Lists what a backup of argv[1] would hold, as the user running it.
LIST_AS_ANOTHER_USER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from utils.backup_archive import project_files
print(*project_files(Path(sys.argv[1])))
"""


def test_a_folder_the_user_cannot_read_is_passed_over_not_a_crash(enterable_dir):
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("setpriv (util-linux), run as root, is needed to act as another user")
    project = enterable_dir / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text("print(1)\\n")
    (project / "locked").mkdir(mode=0o700)  # root's: `nobody` may not look inside, not even for a pyvenv.cfg
    project.chmod(0o755)
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", LIST_AS_ANOTHER_USER]
        + [str(project)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["src/app.py"]
