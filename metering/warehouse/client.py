"""Open the ledger store from one URL: ``chdb:///abs/path`` (embedded) or ``http(s)://`` (server).

Both give the same clickhouse-connect ``Client``, so the rest of the code does not care which.
chDB runs one engine path per process and locks its directory against other processes, so
clients are kept one per (process, URL): ``connect`` returns the same client each time and
refuses a second, different chDB path while one is open. ``release`` closes it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from metering.errors import ConfigError, ServiceUnavailable

logger = logging.getLogger(__name__)

URL_HINT = "set CLICKHOUSE_URL to chdb:///absolute/path or http(s)://user:pass@host:8123/db"


@dataclass(frozen=True)
class StoreUrl:
    """A validated store URL: what kind of store, its DSN, and a password-free form to print."""

    kind: Literal["chdb", "http"]
    dsn: str
    display: str
    path: Path | None = None

    @property
    def key(self) -> str:
        """Identity of the store within a process (the resolved path for chDB)."""
        return f"chdb://{self.path}" if self.path is not None else self.dsn


def parse_url(url: str) -> StoreUrl:
    """Validate ``url`` without connecting; anything unsupported is a ``ConfigError``."""
    parts = urlsplit(url.strip())
    if parts.scheme == "chdb":
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise ConfigError(f"unsupported chDB URL {url!r}: {URL_HINT}")
        path = Path(os.path.realpath(parts.path))  # chDB compares engine paths literally
        return StoreUrl("chdb", f"chdb://{path}", display=f"chdb://{path}", path=path)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"ClickHouse URL {redact(url)!r} names no host: {URL_HINT}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"ClickHouse URL {redact(url)!r}: {exc}: {URL_HINT}") from exc
        return StoreUrl("http", url.strip(), display=redact(url))
    raise ConfigError(f"unsupported ClickHouse URL {redact(url)!r}: {URL_HINT}")


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class _Open:
    pid: int
    client: Client


_lock = threading.Lock()
_clients: dict[str, _Open] = {}


def connect(url: str) -> Client:
    """The process's client for ``url`` (opened on first use, then reused).

    Raises ``ConfigError`` for an unsupported URL or a second chDB path in this process, and
    ``ServiceUnavailable`` (one line) when the store cannot be opened or reached.
    """
    store = parse_url(url)
    with _lock:
        _forget_other_processes()
        held = _clients.get(store.key)
        if held is not None and (store.kind == "http" or held.client.ping()):
            return held.client  # a chDB client closed elsewhere fails ping (no I/O) and reopens
        if store.kind == "chdb":
            _refuse_second_chdb_path(store)
            client = _open_chdb(store)
        else:
            client = _open_http(store)
        _clients[store.key] = _Open(os.getpid(), client)
        logger.info(
            "opened the ledger store %s (ClickHouse %s)", store.display, client.server_version
        )
        return client


def open_here(url: str) -> bool:
    """Whether this process already has ``url`` open (then a chDB path is locked to it)."""
    store = parse_url(url)
    with _lock:
        _forget_other_processes()
        return store.key in _clients


def release(url: str) -> None:
    """Close this process's client for ``url`` (frees the chDB path for another one)."""
    store = parse_url(url)
    with _lock:
        held = _clients.pop(store.key, None)
        if held is not None and held.pid == os.getpid():
            held.client.close()


def _forget_other_processes() -> None:
    # A forked child inherits the parent's table but not a usable engine or connection pool.
    for key in [k for k, held in _clients.items() if held.pid != os.getpid()]:
        del _clients[key]


def _refuse_second_chdb_path(store: StoreUrl) -> None:
    for key, held in list(_clients.items()):
        if not key.startswith("chdb://") or key == store.key:
            continue
        if held.client.ping():
            raise ConfigError(
                f"this process already has the embedded store {key} open and chDB allows one "
                f"path per process: cannot also open {store.display} (use one CLICKHOUSE_URL)"
            )
        del _clients[key]  # closed by someone else: the path is free again


def _open_chdb(store: StoreUrl) -> Client:
    assert store.path is not None
    try:
        store.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the chDB directory {store.path}: {exc.strerror}") from exc
    try:
        return clickhouse_connect.get_client(dsn=store.dsn)
    except ClickHouseError as exc:
        if _locked_by_another_process(store.path):
            raise ServiceUnavailable(
                f"the embedded store {store.path} is open in another process (its owner, "
                "normally the sink, must stop first, or use a ClickHouse server via "
                "CLICKHOUSE_URL)"
            ) from exc
        raise ServiceUnavailable(
            f"cannot open the embedded store {store.path}: {error_reason(exc)}"
        ) from exc


def _locked_by_another_process(path: Path) -> bool:
    """Whether another process holds the engine's ``status`` lock (flock, as chDB takes it)."""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_http(store: StoreUrl) -> Client:
    try:
        # No HTTP session: the one client is shared by threads (asyncio.to_thread callers),
        # and ClickHouse rejects concurrent queries in one session.
        return clickhouse_connect.get_client(dsn=store.dsn, autogenerate_session_id=False)
    except ClickHouseError as exc:
        raise ServiceUnavailable(
            f"cannot reach ClickHouse at {store.display}: {error_reason(exc)}"
        ) from exc


_SERVER_TEXT = re.compile(r"Code: \d+\. DB::Exception: [^\n]*")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def error_reason(exc: BaseException) -> str:
    """The useful part of a driver error on one line: the server's message or the OS error."""
    text = str(exc)
    if found := _SERVER_TEXT.search(text):
        reason = found.group(0)
    elif found := _ERRNO_TEXT.search(text):
        reason = found.group(1).strip()
    else:
        reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return reason if len(reason) <= 240 else reason[:239] + "…"
