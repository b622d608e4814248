"""The embedded local PostGIS cluster: a data folder inside the project, a loopback port.

gridgis creates the cluster on first use (``initdb``), starts and stops it with ``pg_ctl``,
and keeps a generated password next to it. ``initdb`` refuses to run as root, so when
gridgis runs as root the cluster belongs to an unprivileged system user
(``GRIDGIS_PG_SYSTEM_USER``), created on first use. Root never writes inside that user's
folder (files there are written by the owner itself), so the owner cannot trick root into
writing elsewhere through a symbolic link.
"""

import contextlib
import fcntl
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gridgis.errors import ClusterError
from gridgis.settings import Settings

POSTGRES_CONF = """
# Written by gridgis for the embedded cluster.
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0770
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 512MB
effective_cache_size = 4GB
jit = off
"""

PG_HBA = """
# Written by gridgis: password logins only, on the local socket and loopback.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""
# A Unix socket path may not exceed 107 bytes; deep folders put the socket under /tmp.
SOCKET_PATH_MAX = 100
# Where a root-run cluster goes when the project folder is closed to other users (/root/...).
FALLBACK_DIR = Path("/var/lib/gridgis")


def find_pg_bindir() -> Path:
    """Return the folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version wins)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.insert(0, Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise ClusterError(
        "PostgreSQL server programs (initdb, pg_ctl) not found; run `make setup`, or install "
        "PostgreSQL and PostGIS (Debian: apt-get install postgresql postgresql-15-postgis-3)"
    )


@dataclass(frozen=True)
class Cluster:
    """A local PostgreSQL cluster in ``root`` (``data/``, the log); its password beside it."""

    root: Path
    port: int
    database: str
    system_user: str
    db_user: str = "gridgis"

    @classmethod
    def from_settings(cls, settings: Settings) -> "Cluster":
        root = settings.pg_dir.resolve()
        if os.geteuid() == 0 and not _open_to_others(root):
            root = FALLBACK_DIR / _short_hash(root) / root.name
        return cls(root=root, port=settings.pg_port, database=settings.pg_database,
                   system_user=settings.pg_system_user)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        near = self.root / "run"
        if len(str(near / f".s.PGSQL.{self.port}.lock")) <= SOCKET_PATH_MAX:
            return near
        return Path("/tmp") / f"gridgis-{_short_hash(self.root)}"

    @property
    def log_file(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def password_file(self) -> Path:
        """The client's copy of the password: beside the folder, readable by its creator."""
        return self.root.with_name(f"{self.root.name}.password")

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def url(self, database: str | None = None) -> str:
        """Return the SQLAlchemy URL of a database in this cluster (loopback, password)."""
        if not self.password_file.exists():
            raise ClusterError(f"no local cluster in {self.root}: run `gridgis db up` first")
        password = self.password_file.read_text().strip()
        name = database or self.database
        return f"postgresql+psycopg://{self.db_user}:{password}@127.0.0.1:{self.port}/{name}"

    # -- running it ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise set-up, start and stop between processes (two `db up` at once)."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.with_name(f".{self.root.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _as_owner(self) -> list[str]:
        """Return the command prefix that runs a program as the cluster's owner."""
        if os.geteuid() != 0:
            return []
        if shutil.which("runuser") is None:
            raise ClusterError("runuser (util-linux) is needed to run the cluster as "
                               f"{self.system_user}; install util-linux")
        return ["runuser", "-u", self.system_user, "--"]

    def _owner_uid(self) -> int:
        if os.geteuid() != 0:
            return os.geteuid()
        try:
            return pwd.getpwnam(self.system_user).pw_uid
        except KeyError:
            made = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--comment", "gridgis embedded PostGIS", self.system_user],
                capture_output=True, text=True, check=False,
            )
            if made.returncode != 0:
                raise ClusterError(f"cannot create the system user {self.system_user}: "
                                   f"{_last_line(made.stderr)}") from None
            return pwd.getpwnam(self.system_user).pw_uid

    def _run(self, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program as the cluster's owner."""
        return subprocess.run([*self._as_owner(), *command], input=stdin, capture_output=True,
                              text=True, check=False)

    def _pg(self, program: str, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return self._run(str(find_pg_bindir() / program), *args, stdin=stdin)

    def _write_as_owner(self, path: Path, content: str, append: bool = False) -> None:
        result = self._run("tee", *(["-a"] if append else []), str(path), stdin=content)
        if result.returncode != 0:
            raise ClusterError(f"cannot write {path}: {_last_line(result.stderr)}")

    def _check_owner(self, uid: int) -> None:
        """Refuse a data folder that belongs to someone else, with a line that says so."""
        for path in (self.root, self.data_dir):
            if path.exists() and path.stat().st_uid != uid:
                raise ClusterError(
                    f"{path} belongs to {_user_name(path.stat().st_uid)}, not to "
                    f"{_user_name(uid)} who runs the cluster; remove it or set GRIDGIS_PG_DIR "
                    f"to another folder"
                )

    def init(self) -> bool:
        """Create the cluster if there is none; return whether one was created."""
        with self._locked():
            uid = self._owner_uid()
            self._check_owner(uid)
            if self.initialized:
                return False
            self.root.mkdir(exist_ok=True)
            os.chown(self.root, uid, -1)
            self.root.chmod(0o700)
            if self._run("test", "-w", str(self.root)).returncode != 0:
                raise ClusterError(f"user {self.system_user} cannot write {self.root}; set "
                                   f"GRIDGIS_PG_DIR to a folder it can reach")
            # The client's copy first: a crash after initdb must not leave a locked cluster.
            password = secrets.token_urlsafe(24)
            _write_private(self.password_file, password + "\n")
            # initdb reads the password from a file; the owner writes it in its own folder.
            pwfile = self.root / "initdb.pw"
            self._run("sh", "-c", "umask 077 && cat > \"$0\"", str(pwfile), stdin=password)
            result = self._pg(
                "initdb", "-D", str(self.data_dir), "-U", self.db_user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
            )
            self._run("rm", "-f", str(pwfile))
            if result.returncode != 0:
                self.password_file.unlink(missing_ok=True)
                raise ClusterError(f"initdb failed in {self.data_dir}: "
                                   f"{_last_line(result.stderr)}")
            self._write_as_owner(self.data_dir / "postgresql.conf", POSTGRES_CONF, append=True)
            self._write_as_owner(self.data_dir / "pg_hba.conf", PG_HBA)
            return True

    def running(self) -> bool:
        """Return whether the cluster's server is up."""
        if not self.initialized:
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> bool:
        """Start the server if it is not running; return whether it was started now."""
        with self._locked():
            if self.running():
                return False
            if _port_in_use(self.port):
                raise ClusterError(
                    f"port {self.port} on 127.0.0.1 is in use by another program; stop it or "
                    f"set GRIDGIS_PG_PORT to a free port"
                )
            made = self._run("mkdir", "-p", "-m", "0700", str(self.socket_dir))
            if made.returncode != 0:
                raise ClusterError(f"cannot create the socket folder {self.socket_dir}: "
                                   f"{_last_line(made.stderr)}")
            # pg_ctl, run as the owner, creates the log file itself.
            result = self._pg(
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                "-t", "60", "-o", f"-p {self.port} -k {self.socket_dir}",
            )
            if result.returncode != 0:
                log = self.log_file.read_text() if self.log_file.is_file() else result.stderr
                raise ClusterError(f"the local PostGIS did not start: {_last_line(log)} "
                                   f"(log: {self.log_file})")
            return True

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was stopped now."""
        with self._locked():
            if not self.running():
                return False
            result = self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
            if result.returncode != 0:
                raise ClusterError(f"pg_ctl stop failed: {_last_line(result.stderr)}")
            return True


def _open_to_others(path: Path) -> bool:
    """Return whether every existing folder above ``path`` lets other users pass through."""
    return all(p.stat().st_mode & 0o001 for p in path.parents if p.exists())


def _short_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _write_private(path: Path, content: str) -> None:
    """Write a file only its creator can read, never through a symbolic link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"
