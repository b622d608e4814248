"""The embedded local PostGIS cluster: a data folder inside the project, a loopback port.

gridgis creates the cluster on first use (``initdb``), starts and stops it with ``pg_ctl``,
and keeps a generated password beside it. ``initdb`` refuses to run as root, so when gridgis
runs as root the cluster belongs to an unprivileged system user (``GRIDGIS_PG_SYSTEM_USER``),
created on first use.
"""

import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gridgis.errors import ClusterError
from gridgis.settings import Settings

POSTGRES_CONF = """
# Written by gridgis for the embedded cluster.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0770
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 512MB
effective_cache_size = 4GB
jit = off
logging_collector = off
"""

PG_HBA = """
# Written by gridgis: password logins only, on the local socket and loopback.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


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
    """A local PostgreSQL cluster under ``root``: ``data/``, ``run/`` (socket), ``log``."""

    root: Path
    port: int
    database: str
    system_user: str
    db_user: str = "gridgis"

    @classmethod
    def from_settings(cls, settings: Settings) -> "Cluster":
        return cls(
            root=settings.pg_dir.resolve(),
            port=settings.pg_port,
            database=settings.pg_database,
            system_user=settings.pg_system_user,
        )

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgresql.log"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

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

    def _as_owner(self) -> list[str]:
        """Return the command prefix that runs a program as the cluster's owner."""
        return ["runuser", "-u", self.system_user, "--"] if os.geteuid() == 0 else []

    def _owner_uid(self) -> int:
        if os.geteuid() != 0:
            return os.geteuid()
        try:
            return pwd.getpwnam(self.system_user).pw_uid
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 "--comment", "gridgis embedded PostGIS", self.system_user],
                check=True, capture_output=True,
            )
            return pwd.getpwnam(self.system_user).pw_uid

    def _pg(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._as_owner(), str(find_pg_bindir() / program), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def _check_owner(self, uid: int) -> None:
        """Refuse a data folder that belongs to someone else, with a line that says so."""
        for path in (self.root, self.data_dir):
            if path.exists() and path.stat().st_uid != uid:
                owner = _user_name(path.stat().st_uid)
                expected = _user_name(uid)
                raise ClusterError(
                    f"{path} belongs to {owner}, not to {expected} who runs the cluster; "
                    f"remove it or set GRIDGIS_PG_DIR to another folder"
                )

    def _check_reachable(self) -> None:
        """As root, make sure the unprivileged owner can reach the folder at all."""
        if os.geteuid() != 0:
            return
        probe = subprocess.run(
            [*self._as_owner(), "test", "-w", str(self.root)], capture_output=True, check=False
        )
        if probe.returncode != 0:
            raise ClusterError(
                f"user {self.system_user} cannot write {self.root} (a parent folder is closed "
                f"to it); set GRIDGIS_PG_DIR to a folder it can reach, e.g. /var/lib/gridgis"
            )

    def init(self) -> bool:
        """Create the cluster if there is none; return whether one was created."""
        if self.initialized:
            self._check_owner(self._owner_uid())
            return False
        uid = self._owner_uid()
        self._check_owner(uid)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, uid, -1)
        self.root.chmod(0o700)
        self._check_reachable()
        password = secrets.token_urlsafe(24)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chown(pwfile, uid, -1)
        pwfile.chmod(0o600)
        try:
            result = self._pg(
                "initdb", "-D", str(self.data_dir), "-U", self.db_user, "--pwfile", str(pwfile),
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ClusterError(f"initdb failed in {self.data_dir}: {_last_line(result.stderr)}")
        self.socket_dir.mkdir(exist_ok=True)
        os.chown(self.socket_dir, uid, -1)
        conf = POSTGRES_CONF.format(port=self.port, socket_dir=self.socket_dir)
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write(conf)
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)
        os.chown(self.data_dir / "pg_hba.conf", uid, -1)
        # The password is for the client: readable by whoever runs gridgis, not by the server.
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        return True

    def running(self) -> bool:
        """Return whether the cluster's server is up."""
        if not self.initialized:
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> bool:
        """Start the server if it is not running; return whether it was started now."""
        if self.running():
            return False
        if _port_in_use(self.port):
            raise ClusterError(
                f"port {self.port} on 127.0.0.1 is in use by another program; stop it or set "
                f"GRIDGIS_PG_PORT to a free port"
            )
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, self._owner_uid(), -1)
        result = self._pg(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", "60", "-o", f"-p {self.port}",
        )
        if result.returncode != 0:
            raise ClusterError(
                f"the local PostGIS did not start: {_last_line(self.log_file.read_text())} "
                f"(log: {self.log_file})"
            )
        return True

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was stopped now."""
        if not self.running():
            return False
        result = self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        if result.returncode != 0:
            raise ClusterError(f"pg_ctl stop failed: {_last_line(result.stderr)}")
        return True


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
