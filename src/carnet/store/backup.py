"""``carnet backup``: a copy of the embedded store (SQLite and content), without the key store.

A data backup holds only ciphertext: the record keys stay in the key store, backed up on its
own schedule, so that destroying a record's key destroys every copy of its content.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from carnet.domain.errors import ConfigurationError
from carnet.settings import Settings


def backup(settings: Settings, destination: Path) -> str:
    """Write the backup; a line saying what was written. On PostgreSQL, the operator's own
    tools (pg_dump, base backups) copy the database."""
    if settings.is_postgresql:
        raise ConfigurationError(
            "carnet backup copies the embedded SQLite store; on PostgreSQL use pg_dump "
            "(the content is in the database with the db content store, else copy "
            "CARNET_DATA_DIR/content)"
        )
    if destination.exists() and any(destination.iterdir()):
        raise ConfigurationError(f"{destination} is not empty")
    source = settings.data_dir / "carnet.sqlite"
    if not source.exists():
        raise ConfigurationError(f"no store at {source}")
    destination.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as conn:
        conn.execute("VACUUM INTO ?", (str(destination / "carnet.sqlite"),))
    if settings.content_dir.exists():
        shutil.copytree(
            settings.content_dir, destination / "content", ignore=shutil.ignore_patterns(".tmp")
        )
    return f"backup written to {destination} (keys excluded)"
