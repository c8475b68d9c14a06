"""Application-wide services, built once at start: database engine, content store, keys."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.access.matrix import AccessMatrix, load_matrix
from carnet.errors import NotFound
from carnet.settings import Settings
from carnet.store.content import FileContentStore
from carnet.store.crypto import MasterKey, load_master_key
from carnet.store.db import create_engine, migrate
from carnet.store.keystore import KeyStore


@dataclass
class KeyRing:
    """Unwraps record keys from the key store, keeping recently used ones in memory."""

    master: MasterKey
    store: KeyStore
    capacity: int = 10_000
    _cache: OrderedDict[str, bytes] = field(default_factory=OrderedDict)

    async def key_for(self, record_id: str) -> bytes:
        key = self._cache.get(record_id)
        if key is not None:
            self._cache.move_to_end(record_id)
            return key
        wrapped = await self.store.get(record_id)
        if wrapped is None:
            raise NotFound("the record's key no longer exists (record destroyed)")
        key = self.master.unwrap(record_id, wrapped)
        self.remember(record_id, key)
        return key

    async def create(self, record_id: str) -> bytes:
        key, wrapped = self.master.new_record_key(record_id)
        await self.store.put(record_id, wrapped)
        self.remember(record_id, key)
        return key

    async def destroy(self, record_id: str) -> None:
        self.forget(record_id)
        await self.store.delete(record_id)

    def remember(self, record_id: str, key: bytes) -> None:
        self._cache[record_id] = key
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    def forget(self, record_id: str) -> None:
        self._cache.pop(record_id, None)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    content: FileContentStore
    keys: KeyRing
    matrix: AccessMatrix

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings)
        await migrate(engine)
        master = MasterKey(load_master_key(settings.master_key, settings.data_dir / "master.key"))
        return cls(
            settings=settings,
            engine=engine,
            content=FileContentStore(settings.content_dir),
            keys=KeyRing(master, await KeyStore.open(settings)),
            matrix=load_matrix(settings.access_matrix),
        )

    async def close(self) -> None:
        await self.engine.dispose()
        await self.keys.store.close()
