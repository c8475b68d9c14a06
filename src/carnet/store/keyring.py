"""Record keys: unwrapped from the key store with the master key, recent ones kept in memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from carnet.store.crypto import MasterKey, forget
from carnet.store.keystore import KeyStore


class KeyGone(Exception):
    """The record's key no longer exists: the record was destroyed."""


@dataclass
class KeyRing:
    master: MasterKey
    store: KeyStore
    capacity: int = 100_000
    _cache: OrderedDict[str, bytes] = field(default_factory=OrderedDict)

    async def key_for(self, record_id: str) -> bytes:
        key = self._cache.get(record_id)
        if key is not None:
            self._cache.move_to_end(record_id)
            return key
        wrapped = await self.store.get(record_id)
        if wrapped is None:
            raise KeyGone(record_id)
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
        key = self._cache.pop(record_id, None)
        if key is not None:
            forget(key)
