"""Configuration: one frozen attrs class read from ``TMS_*`` environment variables.

Every variable is parsed explicitly and every error names the variable, so a typo in a deployment
fails at start with a message an operator can act on. Secrets are never part of ``__repr__``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs
from attrs import frozen

T = TypeVar("T")


class ConfigError(ValueError):
    """A ``TMS_*`` variable has a value we cannot use; the message names it."""


LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@frozen
class Config:
    """Everything the server and the admin commands need to know about their environment."""

    database_url: str | None = attrs.field(default=None, repr=False)
    data_dir: Path = Path(".tms-data")
    host: str = "127.0.0.1"
    port: int = 8080
    token_ttl: int = 3600
    token_issuer: str = "tms_server"  # noqa: S105  # a JWT claim value, not a secret
    token_audience: str = "kss"  # noqa: S105  # a JWT claim value, not a secret
    reservation_ttl: int = 3600
    sweep_interval: float = 60.0
    retention_expired: int = 7 * 86400
    retention_confirmed: int = 90 * 86400
    refresh_interval: float = 2.0
    log_format: str = "auto"
    log_level: str = "INFO"
    auto_migrate: bool = False
    pool_min: int = 1
    pool_max: int = 10
    db_timeout: float = 5.0
    max_body: int = 1024 * 1024
    workers: int = 1
    metrics_port: int | None = None
    # How long an /auth nonce is remembered: a captured /auth body is refused for this long, so it
    # must outlast any token (default one week; at least the token lifetime, checked below).
    nonce_retention: int = 7 * 86400
    # A connection with no complete request for this long is closed (idle keep-alive, or headers
    # trickling in); a request body must arrive within it too (else 408).
    idle_timeout: float = 30.0
    # Open client connections per process; 0: derived from the open-files limit (connection_cap).
    max_connections: int = 0
    # Memory for recent /shippingoptions answers per process, in MiB (0: no cache); see AnswerCache.
    options_cache_mb: int = 16
    # The operators' web UI: its own listener, never the KSS port (None: no UI).
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"

    def connection_cap(self) -> int:
        """``max_connections``, or what the open-files limit leaves: less 100 descriptors for the
        database pool, logs and files, and two accept() batches (``listen_backlog()`` each) that
        arrive before any connection can be closed. asyncio retries accept() a second later after
        running out, so never running out is what keeps a flood from stalling the listener."""
        if self.max_connections:
            return self.max_connections
        soft = _open_files_limit()
        return max(16, min(10_000, soft - 100 - 2 * self.listen_backlog()))

    def listen_backlog(self) -> int:
        """The listen backlog, which asyncio also uses as its accept() batch: smaller under a low
        open-files limit."""
        return 128 if _open_files_limit() >= 1024 else 32

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured and we run our own PostgreSQL."""
        return not self.database_url

    def where(self) -> str:
        """The database as an operator should read it in a message: the URL without its password,
        or the embedded cluster's absolute directory."""
        if self.database_url:
            return str(_redact_url(self.database_url))
        return f"the embedded PostgreSQL in {(self.data_dir / 'pgdata').resolve()}"

    def safe_dict(self) -> dict[str, object]:
        """The settings as shown to operators: the database URL's password is hidden."""
        out = attrs.asdict(self)
        out["database_url"] = _redact_url(self.database_url)
        out["data_dir"] = str(self.data_dir.resolve())
        return out


def _open_files_limit() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


_SECRET_PARAMS = re.compile(r"(?i)([?&](?:password|sslpassword|sslkey|passfile)=)[^&]*")


def _redact_url(url: str | None) -> str | None:
    """The URL without its password, in the user part or in the query string."""
    if not url or "://" not in url:
        return url
    url = _SECRET_PARAMS.sub(r"\1***", url)
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def _int(name: str, value: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if n < minimum or (maximum is not None and n > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ConfigError(f"{name}: must be at least {minimum}{upper}, got {n}")
    return n


# Durations end up in PostgreSQL intervals and asyncio timers: past ten years they overflow one or
# the other (a 500 on /auth, a sweep that always fails), and no deployment means them.
TEN_YEARS = 10 * 366 * 86400


def _float(name: str, value: str, minimum: float = 0.0, maximum: float = TEN_YEARS) -> float:
    try:
        n = float(value.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
    if not minimum <= n <= maximum:  # also refuses NaN
        raise ConfigError(
            f"{name}: must be a number of seconds from {minimum:g} to {maximum:g}, got {value!r}"
        )
    return n


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true/false, got {value!r}")


def _choice(choices: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, value: str) -> str:
        v = value.strip().upper() if upper else value.strip().lower()
        if v not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return v

    return parse


def _url(name: str, value: str) -> str | None:
    v = value.strip()
    if not v:
        return None
    if not v.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"{name}: expected a postgresql:// URL")
    return v


def _port(name: str, value: str) -> int:
    return _int(name, value, 0, 65535)


# variable -> (Config field, parser)
_VARIABLES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "TMS_DATABASE_URL": ("database_url", _url),
    "TMS_DATA_DIR": ("data_dir", lambda n, v: Path(v.strip() or ".tms-data")),
    "TMS_HOST": ("host", lambda n, v: v.strip() or "127.0.0.1"),
    "TMS_PORT": ("port", _port),
    "TMS_TOKEN_TTL": ("token_ttl", lambda n, v: _int(n, v, 10, 86400)),
    "TMS_TOKEN_ISSUER": ("token_issuer", lambda n, v: v.strip() or "tms_server"),
    "TMS_TOKEN_AUDIENCE": ("token_audience", lambda n, v: v.strip() or "kss"),
    "TMS_RESERVATION_TTL": ("reservation_ttl", lambda n, v: _int(n, v, 1, TEN_YEARS)),
    "TMS_SWEEP_INTERVAL": ("sweep_interval", lambda n, v: _float(n, v, 0.05)),
    "TMS_RETENTION_EXPIRED": ("retention_expired", lambda n, v: _int(n, v, 0, TEN_YEARS)),
    "TMS_RETENTION_CONFIRMED": ("retention_confirmed", lambda n, v: _int(n, v, 0, TEN_YEARS)),
    "TMS_REFRESH_INTERVAL": ("refresh_interval", lambda n, v: _float(n, v, 0.05)),
    "TMS_LOG_FORMAT": ("log_format", _choice(LOG_FORMATS)),
    "TMS_LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "TMS_AUTO_MIGRATE": ("auto_migrate", _bool),
    "TMS_POOL_MIN": ("pool_min", lambda n, v: _int(n, v, 0, 1000)),
    "TMS_POOL_MAX": ("pool_max", lambda n, v: _int(n, v, 1, 1000)),
    "TMS_DB_TIMEOUT": ("db_timeout", lambda n, v: _float(n, v, 0.1, 3600)),
    "TMS_MAX_BODY": ("max_body", lambda n, v: _int(n, v, 1024, 1 << 30)),
    "TMS_WORKERS": ("workers", lambda n, v: _int(n, v, 1, 64)),
    "TMS_METRICS_PORT": ("metrics_port", lambda n, v: _port(n, v) if v.strip() else None),
    "TMS_NONCE_RETENTION": ("nonce_retention", lambda n, v: _int(n, v, 60, TEN_YEARS)),
    "TMS_IDLE_TIMEOUT": ("idle_timeout", lambda n, v: _float(n, v, 0.5, 86400)),
    "TMS_MAX_CONNECTIONS": ("max_connections", lambda n, v: _int(n, v, 0, 100_000)),
    "TMS_OPTIONS_CACHE_MB": ("options_cache_mb", lambda n, v: _int(n, v, 0, 4096)),
    "TMS_ADMIN_PORT": ("admin_port", lambda n, v: _port(n, v) if v.strip() else None),
    "TMS_ADMIN_HOST": ("admin_host", lambda n, v: v.strip() or "127.0.0.1"),
}


def from_env(
    environ: Mapping[str, str] | None = None,
    *,
    flags: Mapping[str, tuple[str, str | None]] | None = None,
    **overrides: object,
) -> Config:
    """Build the Config from ``TMS_*`` variables; command-line ``flags`` win over them.

    ``flags`` maps a variable to (the flag's name, its raw text or None when not given): a flag
    goes through the variable's own parser, so ``--workers 1000`` is refused like
    ``TMS_WORKERS=1000``, and the message names the flag. ``overrides`` are typed values (tests)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, (field, parse) in _VARIABLES.items():
        if name in env:
            values[field] = parse(name, env[name])
    for name, (flag, text) in (flags or {}).items():
        if text is not None:
            field, parse = _VARIABLES[name]
            values[field] = parse(flag, text)
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = Config(**values)  # type: ignore[arg-type]  # fields and parsers are paired above
    if cfg.nonce_retention < cfg.token_ttl:
        raise ConfigError(
            f"TMS_NONCE_RETENTION ({cfg.nonce_retention}) must be at least TMS_TOKEN_TTL ({cfg.token_ttl}): "
            "a captured /auth request would work again while its token is still valid"
        )
    if cfg.admin_port is not None and cfg.admin_port in (cfg.port, cfg.metrics_port):
        raise ConfigError(f"TMS_ADMIN_PORT ({cfg.admin_port}) must differ from the KSS and metrics ports")
    if cfg.pool_min > cfg.pool_max:
        raise ConfigError(f"TMS_POOL_MIN ({cfg.pool_min}) must not exceed TMS_POOL_MAX ({cfg.pool_max})")
    return cfg


def variables() -> list[str]:
    """The names of every variable we read, for documentation and ``tms-admin config``."""
    return list(_VARIABLES)
