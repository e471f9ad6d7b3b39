"""The read side's one cache protocol, and the plugin's byte-bounded caches.

Whatever keeps data read from a run -- `load`'s unbounded dict, the
plugin's LRUs -- offers `get(key)` and `put(key, value, nbytes)`; `RunData`
knows nothing else about it.  The plugin hands each run a `Scoped` view of a
shared `LRU`, under a `Scope` naming the run and the signature of its data;
when the signature changes it drops the old scopes with `LRU.discard_scopes`,
never looking at the keys inside a scope.  So the reader may key its
entries however it likes.
"""

import collections
import os
import threading
import typing


def budget_bytes():
    """`TB_STEPSIZE_CACHE_MB` (default 1024) in bytes: the plugin's main cache budget B."""
    try:
        mb = float(os.environ.get("TB_STEPSIZE_CACHE_MB", "1024"))
    except ValueError:
        mb = 1024.0
    return max(1, int(mb * 2**20))


class Scope(typing.NamedTuple):
    """A run's data as of one signature (what TensorBoard had loaded)."""

    experiment: str
    run: str
    signature: object

    def is_older(self, other):
        """True if this scope is `other`'s run under another signature."""
        return self[:2] == other[:2] and self.signature != other.signature


class Unbounded:
    """The cache of `load`: everything read stays (a notebook reads a run once)."""

    def __init__(self):
        self._items = {}

    def get(self, key):
        return self._items.get(key)

    def put(self, key, value, nbytes):
        self._items[key] = value


class LRU:
    """A byte-bounded LRU map; the newest entry is kept even if too big."""

    def __init__(self, budget):
        self.budget = budget
        self._items = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, nbytes):
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.budget and len(self._items) > 1:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def discard_scopes(self, predicate):
        """Drops every entry put through a `Scoped` view whose scope satisfies `predicate`."""
        with self._lock:
            for key in [k for k in self._items if predicate(k[0])]:
                self._bytes -= self._items.pop(key)[1]

    def scoped(self, scope):
        return Scoped(self, scope)

    @property
    def nbytes(self):
        return self._bytes

    def __len__(self):
        return len(self._items)


class Scoped:
    """One scope's view of a shared `LRU`: its entries are stored as `(scope, key)`."""

    def __init__(self, lru, scope):
        self._lru, self._scope = lru, scope

    def get(self, key):
        return self._lru.get((self._scope, key))

    def put(self, key, value, nbytes):
        self._lru.put((self._scope, key), value, nbytes)
