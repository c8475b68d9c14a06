"""The store's services, built once at start: the database engine, the content stores, the
record keys. Only the core (carnet.access) holds them; no interface ever sees this bag.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.settings import Settings
from carnet.store.content import ContentStore, FileContentStore
from carnet.store.content_db import DbContentStore
from carnet.store.crypto import MasterKey, load_master_key
from carnet.store.db import create_engine, migrate
from carnet.store.keyring import KeyRing
from carnet.store.keystore import KeyStore
from carnet.store.preferences import seal_clear_addresses


@dataclass
class StoreServices:
    settings: Settings
    engine: AsyncEngine
    keys: KeyRing
    stores: dict[str, ContentStore]  # by name: file, db
    content: ContentStore  # where new content goes

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @classmethod
    async def start(cls, settings: Settings, *, run_migrations: bool = True) -> StoreServices:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings)
        if run_migrations:
            await migrate(engine)
        master = MasterKey(load_master_key(settings.master_key, settings.data_dir / "master.key"))
        stores: dict[str, ContentStore] = {
            "file": FileContentStore(settings.content_dir),
            "db": DbContentStore(engine),
        }
        chosen = settings.content_store or ("db" if engine.dialect.name == "postgresql" else "file")
        keys = KeyRing(master, await KeyStore.open(settings))
        if run_migrations:
            # what a migration cannot do without the keys: seal the addresses of 0008
            await seal_clear_addresses(engine, keys)
        return cls(
            settings=settings,
            engine=engine,
            keys=keys,
            stores=stores,
            content=stores[chosen],
        )

    async def close(self) -> None:
        await self.engine.dispose()
        await self.keys.store.close()
