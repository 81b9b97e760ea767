"""A PostgreSQL cluster in a folder the project owns, for team mode's servers.

The server listens on 127.0.0.1 only (no Unix socket, so nothing is written outside the
folder) and asks every connection for a password. PostgreSQL refuses to run as root: when
zooflow runs as root, the cluster's commands run as an unprivileged account (``postgres``, or
``$ZOOFLOW_PG_USER``) that owns the cluster's folder, through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from zooflow.errors import UserError

ROLE = "zooflow"  # the database role the servers connect as


@dataclass(frozen=True)
class Cluster:
    """One cluster: its folder (``data/``, ``postgres.log``), port and the role's password."""

    folder: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str, driver: str) -> str:
        """A SQLAlchemy URL of one database, e.g. ``driver="psycopg"`` (MLflow) or ``"asyncpg"`` (Prefect)."""
        return f"postgresql+{driver}://{ROLE}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"


def bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``$ZOOFLOW_PG_BIN``, the newest Debian server
    install, or ``PATH``."""
    if os.environ.get("ZOOFLOW_PG_BIN"):
        return Path(os.environ["ZOOFLOW_PG_BIN"])
    installs = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
                      if p.parts[-3].isdigit() else 0)
    if installs:
        return installs[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise UserError("no PostgreSQL server binaries found (initdb, pg_ctl): install them (Debian: "
                    "apt-get install postgresql) or set ZOOFLOW_PG_BIN to their folder")


def _server_account() -> pwd.struct_passwd | None:
    """The account the cluster runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("ZOOFLOW_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"PostgreSQL refuses to run as root, and there is no account '{name}' to run it as: "
                        f"create an unprivileged account (or set ZOOFLOW_PG_USER to one), or run zooflow "
                        f"as a normal user") from None


def _run(cluster: Cluster, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    account = _server_account()
    command = [str(bin_dir() / tool), *args]
    if account is not None:
        command = ["runuser", "-u", account.pw_name, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=cluster.folder, check=False)
    if check and done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise UserError(f"PostgreSQL {tool} failed in {cluster.folder} (status {done.returncode}):\n{tail}"
                        + (f"\nThe server's log: {cluster.log}" if tool == "pg_ctl" else ""))
    return done


def _give_to_server_account(cluster: Cluster) -> None:
    """Make the cluster folder the server account's, and check that account can reach it: a
    folder under a private parent (e.g. a 0700 home or temp folder) is unreachable for it."""
    account = _server_account()
    if account is None:
        return
    for path in (cluster.folder, *cluster.folder.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    probe = subprocess.run(["runuser", "-u", account.pw_name, "--", "test", "-w", str(cluster.folder)], check=False)
    if probe.returncode != 0:
        blocked = next((str(p) for p in reversed(cluster.folder.parents) if not os.stat(p).st_mode & 0o001), "?")
        raise UserError(f"the PostgreSQL account '{account.pw_name}' cannot reach {cluster.folder} (a parent "
                        f"folder, e.g. {blocked}, is private): keep the project in a folder others may traverse")


def init(cluster: Cluster) -> bool:
    """Create the cluster once (a no-op when it exists); whether it was created."""
    if (cluster.data / "PG_VERSION").exists():
        return False
    if cluster.data.exists():
        shutil.rmtree(cluster.data)  # an initdb that was stopped half-way
    cluster.folder.mkdir(parents=True, exist_ok=True)
    secret = cluster.folder / "role-password"
    secret.write_text(cluster.password + "\n")
    secret.chmod(0o600)
    try:
        _give_to_server_account(cluster)
        _run(cluster, "initdb", "-D", str(cluster.data), "-U", ROLE, "-E", "UTF8", "--no-instructions",
             "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={secret}")
    finally:
        secret.unlink(missing_ok=True)
    return True


def running(cluster: Cluster) -> bool:
    return cluster.data.exists() and _run(cluster, "pg_ctl", "-D", str(cluster.data), "status", check=False).returncode == 0


def start(cluster: Cluster) -> None:
    """Start the server on 127.0.0.1:``port`` and wait until it takes connections."""
    if running(cluster):
        return
    # no chown here: `init` gave the folder to the server account, which made everything in it
    options = f"-p {cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    _run(cluster, "pg_ctl", "-D", str(cluster.data), "-l", str(cluster.log), "-w", "-t", "120", "-o", options, "start")


def stop(cluster: Cluster) -> None:
    if running(cluster):
        _run(cluster, "pg_ctl", "-D", str(cluster.data), "-m", "fast", "-w", "-t", "120", "stop")


def ensure_database(cluster: Cluster, name: str) -> None:
    """Create database ``name`` unless it exists."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(host="127.0.0.1", port=cluster.port, user=ROLE, password=cluster.password,
                         dbname="postgres", autocommit=True, connect_timeout=10) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
