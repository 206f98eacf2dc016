"""A throwaway PostgreSQL + PostGIS cluster for tests and benchmarks.

`PgCluster` runs `initdb` into a fresh temporary directory, starts `postgres` on a
free TCP port on 127.0.0.1 with its Unix socket inside that directory (so it never
touches a PostgreSQL already running on the machine, e.g. on port 5432), creates a
database `tracker` and `CREATE EXTENSION postgis` in it.  `stop()` shuts the server
down (`pg_ctl stop -m fast`) and removes the directory.

Binaries are looked up under /usr/lib/postgresql/*/bin (Debian's layout), preferring
version 15; `TRACKER_PG_BINDIR` overrides the search.  PostgreSQL refuses to run as
root, so when running as root the directory is handed to the `postgres` system user
and every server command goes through `runuser -u postgres --`.

Local connections use trust authentication.  Durability settings are left at their
defaults (fsync and synchronous_commit on): the crash tests rely on committed data
surviving.  Only `initdb` runs with --no-sync, which affects nothing but the initial
template files of a cluster that is thrown away anyway.

Usage::

    with PgCluster() as cluster:
        engine = sqlalchemy.create_engine(cluster.url)
        other_url = cluster.create_database("scratch")

Raises `PgUnavailable` (with the reason) when the binaries, the `postgres` user or the
PostGIS extension are missing, so that callers can skip or fail as they see fit.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from tests.ports import free_port

PREFERRED_VERSION = "15"
SUPERUSER = "postgres"
DATABASE = "tracker"

_SERVER_SETTINGS = """
# --- tests/pgcluster.py ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
shared_buffers = 128MB
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 2GB
logging_collector = off
log_min_messages = warning
log_timezone = 'UTC'
timezone = 'UTC'
"""


class PgUnavailable(RuntimeError):
    """PostgreSQL or PostGIS cannot be run on this machine (the message says why)."""


def find_bindir(preferred: str = PREFERRED_VERSION) -> Path:
    """The bin directory holding initdb/pg_ctl/postgres; `preferred` wins, else newest."""
    override = os.environ.get("TRACKER_PG_BINDIR")
    candidates = [Path(override)] if override else [
        Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    usable = [p for p in candidates
              if all((p / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))]
    if not usable:
        where = override or "/usr/lib/postgresql/*/bin"
        raise PgUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {where}")

    def version_key(path: Path) -> tuple[int, float]:
        name = path.parent.name
        number = float(name) if re.fullmatch(r"\d+(\.\d+)?", name) else 0.0
        return (1 if name == preferred else 0, number)

    return max(usable, key=version_key)


class PgCluster:
    """One private PostgreSQL server; see the module docstring."""

    def __init__(self, bindir: str | os.PathLike[str] | None = None,
                 database: str = DATABASE, start_timeout_s: float = 60.0) -> None:
        self._bindir = Path(bindir) if bindir is not None else None
        self.database = database
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.directory: Path | None = None
        self.startup_s: float | None = None   # seconds start() took, for reports
        self._as_postgres = os.geteuid() == 0

    # -- public ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.port is not None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `tracker` database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise RuntimeError("PgCluster is not started")
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Create and start the cluster; returns `url`.  Raises PgUnavailable."""
        if self.running:
            return self.url
        began = time.monotonic()
        bindir = self._bindir or find_bindir()
        self._bindir = bindir
        if self._as_postgres:
            try:
                pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root but there is no {SUPERUSER!r} system user "
                    "to run PostgreSQL as") from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root but `runuser` is not installed")

        self.directory = Path(tempfile.mkdtemp(prefix="tracker-pg-"))
        atexit.register(self.stop)
        try:
            if self._as_postgres:
                entry = pwd.getpwnam(SUPERUSER)
                os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            data = self.directory / "data"
            self._run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                       "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                       "--no-instructions"])
            self._start_server(bindir, data)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory. Idempotent."""
        directory, self.directory = self.directory, None
        if directory is None:
            return
        atexit.unregister(self.stop)
        data = directory / "data"
        if self.port is not None and (data / "postmaster.pid").exists():
            assert self._bindir is not None
            self._run([str(self._bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                       "-w", "-t", "60", "stop"], check=False)
        self.port = None
        shutil.rmtree(directory, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server as a crash would (immediate mode), keeping its data.

        For outage tests: clients see connections refused until `resume()`."""
        assert self.directory is not None and self._bindir is not None
        self._run([str(self._bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                   "-m", "immediate", "-w", "stop"])

    def resume(self) -> None:
        """Start the server again after `pause()`, on the same port and data."""
        assert self.directory is not None and self._bindir is not None
        self._run([str(self._bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                   "-l", str(self.directory / "postgres.log"), "-w",
                   "-t", str(int(self.start_timeout_s)), "start"])

    def connect(self, database: str | None = None):
        """A psycopg2 connection in autocommit mode (for setup, not for the store)."""
        if self.port is None:
            raise RuntimeError("PgCluster is not started")
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                dbname=database or self.database)
        conn.autocommit = True
        return conn

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE `name` (empty, from template1; or a copy of the database
        `template`, which nobody may be connected to); returns its URL."""
        _check_identifier(name)
        clause = ""
        if template is not None:
            _check_identifier(template)
            clause = f' TEMPLATE "{template}"'
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            conn.close()
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE `name`, disconnecting whoever is still connected."""
        _check_identifier(name)
        conn = self.connect("postgres")
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        proc = subprocess.run(argv, cwd=self.directory, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited with {proc.returncode}:\n"
                f"{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        if self.directory is None:
            return ""
        log = self.directory / "postgres.log"
        try:
            return "server log:\n" + log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _start_server(self, bindir: Path, data: Path) -> None:
        assert self.directory is not None
        base_conf = (data / "postgresql.conf").read_text()
        last_error: Exception | None = None
        for _attempt in range(3):   # the free port may be taken before we bind it
            port = free_port()
            (data / "postgresql.conf").write_text(base_conf + _SERVER_SETTINGS.format(
                port=port, socket_dir=str(self.directory).replace("'", "''")))
            proc = self._run([str(bindir / "pg_ctl"), "-D", str(data),
                              "-l", str(self.directory / "postgres.log"), "-w",
                              "-t", str(int(self.start_timeout_s)), "start"], check=False)
            if proc.returncode == 0:
                self.port = port
                return
            last_error = RuntimeError(
                f"pg_ctl start exited with {proc.returncode}:\n{proc.stdout}\n"
                f"{proc.stderr}\n{self._log_tail()}")
        assert last_error is not None
        raise last_error

    def _create_database(self) -> None:
        self.create_database(self.database)
        conn = self.connect(self.database)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg2.Error as exc:
            raise PgUnavailable(
                f"the PostGIS extension cannot be created ({exc.pgerror or exc}); "
                "install postgis for PostgreSQL "
                f"{self._bindir.parent.name if self._bindir else '?'}") from exc
        finally:
            conn.close()


def _check_identifier(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain database name: {name!r}")


if __name__ == "__main__":   # python -m tests.pgcluster: start, report, stop
    with PgCluster() as cluster:
        print(f"{cluster.url} started in {cluster.startup_s:.2f} s")
