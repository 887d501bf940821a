"""The response cache: request key, memory front, store seam and SQLite store, single-flight.

``ResponseCache`` (:mod:`.response_cache`) keeps recent answers decoded in memory in
front of a :class:`CacheStore` (:mod:`.store`): the SQLite file of
:mod:`.sqlite_store`, or a dict for a cache with no file. ``cache_key``
(:mod:`.request_key`) says which requests are the same; ``SingleFlight``
(:mod:`.singleflight`) makes concurrent identical requests in one process share one call.
"""

from .request_key import CACHE_KEY_VERSION, cache_key
from .response_cache import ResponseCache
from .singleflight import SingleFlight
from .store import CacheStore, Entry, MemoryStore

__all__ = [
    "CACHE_KEY_VERSION",
    "CacheStore",
    "Entry",
    "MemoryStore",
    "ResponseCache",
    "SingleFlight",
    "cache_key",
]
