"""The embedded database opens no door: as root no folder above the data changes, no other user gets in.

Tests run as root here, as in many containers; another local user is played
with `setpriv` as `nobody`. Each case runs the real thing in child processes.
"""

import os
import shutil
import stat
import subprocess
import sys

import psycopg2.extensions
import pytest

from tests.helpers import run_script
from tests.embedded_checks import CONNECT, connect_once, embedded_uri, servers

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root makes the database run as another user")
needs_setpriv = pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) plays another user")


def _kill_servers(folder):
    for process in servers(folder):
        process.kill()


@as_root
def test_as_root_no_folder_above_the_data_is_opened(enterable_dir):
    private = enterable_dir / "home"  # like /root: 0700, holding a .env
    (private / "project").mkdir(parents=True)
    (private / ".env").write_text("DATABASE_PASSWORD=x\n")
    private.chmod(0o700)
    result = subprocess.run(
        [sys.executable, "-c", CONNECT, str(private / "project" / "data"), "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _kill_servers(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "project").stat().st_mode) == 0o755
    assert result.returncode != 0
    assert f"cannot enter {private} (mode drwx------)" in result.stderr
    assert "gho-etl changes no permission outside its data directory" in result.stderr


@as_root
def test_as_root_a_scheduler_that_cannot_start_the_database_says_so_and_leaves_no_pid_file(script_env, enterable_dir):
    private = enterable_dir / "home"
    private.mkdir(mode=0o700)
    env = dict(script_env, GHO_DATA_DIR=str(private / "data"), GHO_LOG_DIR=str(enterable_dir / "logs"))
    env.pop("DATABASE_URL")
    started = run_script("start_scheduler.py", env=env)
    assert started.returncode == 2, started.stdout
    assert f"cannot enter {private} (mode drwx------)" in started.stderr
    assert not (private / "data" / "scheduler.pid").exists()
    once = run_script("start_scheduler.py", "--once", env=env)
    assert once.returncode == 2 and len(once.stderr.strip().splitlines()) == 1, once.stderr
    assert not (private / "data" / "landing").exists(), "nothing may run when the database cannot"
    assert not (private / "data" / "postgres.initialising").exists()
    assert "did not finish" not in once.stderr + started.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


@as_root
@needs_setpriv
def test_another_user_can_read_nothing_the_pipeline_wrote(script_env, enterable_dir):
    env = dict(script_env, GHO_DATA_DIR=str(enterable_dir / "data"), GHO_LOG_DIR=str(enterable_dir / "logs"))
    env.pop("DATABASE_URL")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    data = enterable_dir / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o710  # only the database's group may enter, to reach its cluster
    for target in [data, data / "postgres.password", data / "postgres", enterable_dir / "logs"]:
        peek = subprocess.run(
            [
                *AS_NOBODY,
                sys.executable,
                "-c",
                "import os, sys; p = sys.argv[1]; " "os.listdir(p) if os.path.isdir(p) else open(p).read()",
                str(target),
            ],
            capture_output=True,
            text=True,
        )
        assert "PermissionError" in peek.stderr, f"nobody could read {target}"
    for path in [*data.rglob("*"), *(enterable_dir / "logs").rglob("*")]:
        if "postgres" not in path.relative_to(data.parent).parts[1:2]:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@needs_setpriv
def test_a_long_path_gets_a_private_socket_folder_even_when_another_user_took_its_name(enterable_dir):
    deep = enterable_dir / ("d" * 60) / ("e" * 40 + " with a space")
    deep.mkdir(parents=True)
    made = []
    try:
        made.append(_socket_folder(deep))
        assert made[0] != deep / "postgres"  # too long for a socket address
        _assert_private(made[0])
        shutil.rmtree(made[0])
        subprocess.run([*AS_NOBODY, "mkdir", "-m", "777", str(made[0])], check=True)
        made.append(_socket_folder(deep))
        assert made[1] != made[0]
        _assert_private(made[1])
        assert connect_once(deep).returncode == 0
    finally:
        _kill_servers(deep)
        for folder in made:  # in the shared temp folder: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)


def _socket_folder(data_dir):
    return psycopg2.extensions.parse_dsn(embedded_uri(data_dir))["host"]


def _assert_private(folder):
    from pathlib import Path

    status = Path(folder).lstat()
    assert stat.S_ISDIR(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o700, oct(status.st_mode)
    expected = "pgserver" if os.geteuid() == 0 else None
    if expected:
        import pwd

        assert status.st_uid == pwd.getpwnam(expected).pw_uid


def test_a_lost_password_file_is_said_as_such(enterable_dir):
    data = enterable_dir / "data"
    data.mkdir()
    try:
        assert connect_once(data).returncode == 0
        (data / "postgres.password").unlink()
        again = connect_once(data)
        assert again.returncode != 0
        assert "postgres.password is missing" in again.stderr and "put the file back" in again.stderr
    finally:
        _kill_servers(data)
