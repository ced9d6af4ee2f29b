"""`scripts/db.py`: the database in use, one command away (uri, psql, start, stop, status).

Nothing here prints or passes on a command line a password: the embedded
database's URI names its 0600 passfile; for a configured database the
password reaches psql only through its environment (PGPASSWORD).
"""

import argparse
import os
import shutil
import subprocess
import sys
import warnings
from urllib.parse import quote, urlencode

import psycopg2.extensions

from src.commands.common import EXIT_CONFIG, EXIT_FAILED, SETTINGS_HELP, command, fail
from src.db import Database
from src.errors import EXIT_OK, ConfigError

SECRET_KEYWORDS = ("password", "sslpassword")
KEEP_UP_HINT = "python3 scripts/db.py start keeps it up"


def _control():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from src.embedded_db import control

    return control


def db_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="db.py",
        description="The database gho-etl loads into: the embedded one (no database configured) or yours.",
        epilog="exit codes: 0 done (status: up), 1 failed (status: not up), 2 bad usage or configuration "
        "(start/stop with a database configured); psql exits with psql's own code. " + SETTINGS_HELP,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{uri,psql,start,stop,status}")
    verbs.add_parser("uri", help="print a connection URI with no password in it (for psql, pandas, BI tools)")
    verbs.add_parser("psql", help="open a psql shell on the database; what follows goes to psql (-c 'SELECT 1')")
    verbs.add_parser("start", help="start the embedded database and keep it up until `db.py stop`")
    verbs.add_parser("stop", help="let the embedded database stop: now, or when the jobs using it end")
    verbs.add_parser("status", help="which database is in use, and whether it is up")
    argv = list(sys.argv[1:] if argv is None else argv)
    psql_args = []
    if argv[:1] == ["psql"] and argv[1:2] not in (["-h"], ["--help"]):
        argv, psql_args = ["psql"], argv[2:] if argv[1:2] == ["--"] else argv[1:]

    def body(invocation):
        try:
            return _VERBS[invocation.args.verb](Database(invocation.settings), psql_args)
        except PermissionError as exc:  # e.g. another user's data directory
            return fail(f"{exc.filename or 'a file'}: permission denied (run as the user who owns it)", EXIT_FAILED)

    return command(parser, body, argv, logs=None)


def _uri(database, _) -> int:
    if not database.is_embedded:
        print(_external_uri(database.external_params()))
        print("note: no password shown; libpq reads it from PGPASSWORD or ~/.pgpass", file=sys.stderr)
        return EXIT_OK
    control = _control()
    state = control.state(database.embedded_dir)
    if not state.running:
        return fail(f"the embedded database in {database.embedded_dir} is not running: {KEEP_UP_HINT}", EXIT_FAILED)
    print(control.uri(database.embedded_dir, state.socket_dir))
    if not state.kept_up:
        print(f"note: it stops when the last job using it ends; {KEEP_UP_HINT}", file=sys.stderr)
    return EXIT_OK


def _psql(database, psql_args) -> int:
    environment = dict(os.environ)
    if database.is_embedded:
        control = _control()
        database.start_embedded()  # held by this process until psql ends
        target = control.uri(database.embedded_dir, control.state(database.embedded_dir).socket_dir)
    else:
        params = database.external_params()
        if params.get("password") is not None:
            environment["PGPASSWORD"] = params.pop("password")
        params.pop("sslpassword", None)  # never on a command line: psql asks for it
        target = psycopg2.extensions.make_dsn(**params)
    shell = subprocess.Popen([_psql_program(), target, *psql_args], env=environment)
    while True:
        try:
            code = shell.wait()
            return 128 - code if code < 0 else code  # killed by a signal: the shell's convention
        except KeyboardInterrupt:
            continue  # Ctrl-C is psql's (it cancels the running query); we wait for psql to end


def _psql_program() -> str:
    try:
        program = _control().psql_binary()
    except ImportError:
        program = None
    if program is not None and program.exists():
        return str(program)
    found = shutil.which("psql")
    if found is None:
        raise ConfigError("no psql found: install the PostgreSQL client (e.g. apt install postgresql-client)")
    return found


def _start(database, _) -> int:
    if not database.is_embedded:
        return fail(f"a database is configured ({database.description()}): there is no embedded one", EXIT_CONFIG)
    database.start_embedded()  # the phases' one-line errors: not installed, a closed folder, ...
    state = _control().keep_up(database.embedded_dir)
    print(f"embedded PostgreSQL {state.version} is up (pid {state.pid}) and stays up until: python3 scripts/db.py stop")
    print('connect with: python3 scripts/db.py psql   or   psql "$(python3 scripts/db.py uri)"')
    return EXIT_OK


def _stop(database, _) -> int:
    if not database.is_embedded:
        return fail(f"a database is configured ({database.description()}): gho-etl does not stop it", EXIT_CONFIG)
    users = _control().let_stop(database.embedded_dir)
    if users is None:
        print("the embedded database is not running")
    elif users:
        pids = ", ".join(map(str, users))
        print(f"the embedded database stops when the {len(users)} process(es) using it end (pids {pids})")
    else:
        print("the embedded database is stopped")
    return EXIT_OK


def _status(database, _) -> int:
    if not database.is_embedded:
        return _external_status(database)
    database.check()  # could it run here at all? (as root: every folder above it enterable)
    state = _control().state(database.embedded_dir)
    where = f"embedded PostgreSQL {state.version or ''} in {database.embedded_dir}".replace("  ", " ")
    if not state.exists:
        print(f"{where}: not made yet (the first job, or db.py start, makes it)")
        return EXIT_FAILED
    if not state.running:
        print(f"{where}: stopped (up while a job uses it; {KEEP_UP_HINT})")
        return EXIT_FAILED
    if state.kept_up:
        kept = "kept up by db.py start"
    elif state.users:
        kept = f"stops when the last process using it ends (pids {', '.join(map(str, state.users))})"
    else:
        kept = "no live process uses it (one was killed): python3 scripts/db.py stop stops it"
    print(f"{where}: up (pid {state.pid}), {kept}")
    print(f"socket folder: {state.socket_dir}")
    return EXIT_OK


def _external_status(database) -> int:
    connection = database.connect()  # DatabaseUnavailable: one line and exit 1, through `command`
    try:
        version = connection.server_version
    finally:
        connection.close()
    print(f"{database.description()}: up (PostgreSQL {version // 10000}.{version % 100})")
    return EXIT_OK


def _external_uri(params) -> str:
    """A libpq URI of `params` without its secrets."""
    params = {key: value for key, value in params.items() if key not in SECRET_KEYWORDS and value is not None}
    user = quote(params.pop("user", ""), safe="")
    host = params.pop("host", "")
    port = params.pop("port", "")
    dbname = quote(params.pop("dbname", ""), safe="")
    if host.startswith("/") or "," in host:
        params = {"host": host, **params}
        host = ""
    netloc = (f"{user}@" if user else "") + (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{netloc}/{dbname}{query}"


_VERBS = {"uri": _uri, "psql": _psql, "start": _start, "stop": _stop, "status": _status}
