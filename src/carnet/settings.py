"""One settings object, read from CARNET_* environment variables.

Every setting is documented in docs/settings.md; a test keeps the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from carnet.domain.errors import ConfigurationError


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"not a boolean: {value!r}")


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {value!r}") from None


def _positive(name: str, value: str | None, default: int) -> int:
    number = _int(name, value, default)
    if number < 1:
        raise ConfigurationError(f"{name} must be 1 or more, got {value!r}")
    return number


DEFAULT_CONTENT_TYPES: tuple[str, ...] = (
    "text/xml",  # CDA R2 (levels 1 and 3), as the PDSm and CI-SIS formats name it
    "application/xml",
    "application/hl7-v3+xml",
    "application/cda+xml",
    "application/pdf",  # a patient's plain PDF, a CDA level 1 body
    "text/plain",
    "text/rtf",  # the other CDA level 1 bodies of the CI-SIS (urn:ihe:iti-fr:xds-sd:*:2010)
    "image/jpeg",
    "image/tiff",
    "application/fhir+json",  # a FHIR document (Bundle of type document): PDSm for DMP TD3.2
)
"""The media types a document's content may have (dmp.md §6), lower case, without parameters."""


def _content_types(value: str | None) -> tuple[str, ...]:
    if not value or not value.strip():
        return DEFAULT_CONTENT_TYPES
    types = tuple(t.strip().lower() for t in value.split(",") if t.strip())
    bad = [t for t in types if t.count("/") != 1 or ";" in t or " " in t]
    if bad:
        raise ConfigurationError(f"CARNET_CONTENT_TYPES: not media types: {bad}")
    return types


WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - names, not a bind


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :meth:`from_env` or directly in tests."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    base_url: str | None = None
    master_key: str | None = None
    dev_issuer: bool = False
    allow_test_ins: bool = False
    oidc_issuers: str | None = None
    audience: str = "carnet"
    max_upload_bytes: int = 64 * 1024 * 1024
    token_ttl_seconds: int = 3600
    page_size_default: int = 20
    page_size_max: int = 200
    db_pool_size: int = 20
    access_matrix: Path | None = None
    keystore_url: str | None = None
    content_store: str | None = None  # file | db; default: db on PostgreSQL, file on SQLite
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "carnet@localhost"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    api_docs: bool | None = None  # None: on only with the development issuer
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    staged_max_age_seconds: int = 24 * 3600
    staged_purge_interval_seconds: int = 3600

    @property
    def public_base_url(self) -> str:
        """The server's public address, from configuration only: ``CARNET_BASE_URL``, else the
        address it listens on (a wildcard address is named ``localhost``). Never a request's
        ``Host`` or ``X-Forwarded-*`` header: an absolute URL built from those would let whoever
        sends the request choose where every later reader's client sends its bearer token."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = self.host
        if host in WILDCARD_HOSTS:
            host = "localhost"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address in a URL
        return f"http://{host}:{self.port}"

    @property
    def base_url_is_guessed(self) -> bool:
        """No ``CARNET_BASE_URL`` and a wildcard listening address: the URLs carnet serves name
        ``localhost``, which clients on other machines cannot follow."""
        return not self.base_url and self.host in WILDCARD_HOSTS

    @property
    def api_docs_served(self) -> bool:
        """Whether /docs and /openapi.json are served (CARNET_API_DOCS, else the dev issuer)."""
        return self.dev_issuer if self.api_docs is None else self.api_docs

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        return cls(
            data_dir=Path(e.get("CARNET_DATA_DIR") or "var"),
            database_url=e.get("CARNET_DATABASE_URL") or None,
            host=e.get("CARNET_HOST") or "127.0.0.1",
            port=_int("CARNET_PORT", e.get("CARNET_PORT"), 8000),
            workers=_positive("CARNET_WORKERS", e.get("CARNET_WORKERS"), 1),
            base_url=e.get("CARNET_BASE_URL") or None,
            master_key=e.get("CARNET_MASTER_KEY") or None,
            dev_issuer=_bool(e.get("CARNET_DEV_ISSUER")),
            allow_test_ins=_bool(e.get("CARNET_ALLOW_TEST_INS")),
            oidc_issuers=e.get("CARNET_OIDC_ISSUERS") or None,
            audience=e.get("CARNET_AUDIENCE") or "carnet",
            max_upload_bytes=_int(
                "CARNET_MAX_UPLOAD_BYTES", e.get("CARNET_MAX_UPLOAD_BYTES"), 64 * 1024 * 1024
            ),
            token_ttl_seconds=_int("CARNET_TOKEN_TTL", e.get("CARNET_TOKEN_TTL"), 3600),
            db_pool_size=_int("CARNET_DB_POOL_SIZE", e.get("CARNET_DB_POOL_SIZE"), 20),
            keystore_url=e.get("CARNET_KEYSTORE_URL") or None,
            content_store=_content_store(e.get("CARNET_CONTENT_STORE")),
            access_matrix=Path(e["CARNET_ACCESS_MATRIX"])
            if e.get("CARNET_ACCESS_MATRIX")
            else None,
            smtp_host=e.get("CARNET_SMTP_HOST") or None,
            smtp_port=_int("CARNET_SMTP_PORT", e.get("CARNET_SMTP_PORT"), 25),
            smtp_from=e.get("CARNET_SMTP_FROM") or "carnet@localhost",
            smtp_starttls=_bool(e.get("CARNET_SMTP_STARTTLS")),
            smtp_user=e.get("CARNET_SMTP_USER") or None,
            smtp_password=e.get("CARNET_SMTP_PASSWORD") or None,
            api_docs=_bool(e["CARNET_API_DOCS"]) if e.get("CARNET_API_DOCS") else None,
            content_types=_content_types(e.get("CARNET_CONTENT_TYPES")),
            staged_max_age_seconds=_positive(
                "CARNET_STAGED_MAX_AGE", e.get("CARNET_STAGED_MAX_AGE"), 24 * 3600
            ),
            staged_purge_interval_seconds=_int(
                "CARNET_STAGED_PURGE_INTERVAL", e.get("CARNET_STAGED_PURGE_INTERVAL"), 3600
            ),
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: the configured one, or SQLite under data_dir."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'carnet.sqlite').resolve()}"

    @property
    def content_dir(self) -> Path:
        return self.data_dir / "content"

    @property
    def is_postgresql(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")


def _content_store(value: str | None) -> str | None:
    if not value:
        return None
    if value not in ("file", "db"):
        raise ConfigurationError(f"CARNET_CONTENT_STORE must be file or db, got {value!r}")
    return value


def normalise_database_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async driver."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigurationError(
        f"CARNET_DATABASE_URL must be postgresql://… or sqlite:///…, got {url.split(':', 1)[0]}://…"
    )
