"""`caches`: the read side's one cache protocol and the plugin's byte-bounded LRU."""

from tb_stepsize import caches


def test_lru_budget():
    lru = caches.LRU(100)
    lru.put("a", 1, 60)
    lru.put("b", 2, 30)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3, 30)  # evicts b (least recently used)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert lru.nbytes == 90
    lru.put("huge", 4, 500)  # bigger than the budget: kept alone
    assert lru.get("huge") == 4 and len(lru) == 1 and lru.nbytes == 500


def test_scoped_views_and_discard_scopes():
    lru = caches.LRU(10_000)
    old = caches.Scope("", "run", "sig1")
    new = caches.Scope("", "run", "sig2")
    other = caches.Scope("", "other", "sig1")
    for scope in (old, new, other):
        view = lru.scoped(scope)
        view.put(("column", "step", "p50"), scope.signature, 10)
        view.put("any key layout", 1, 10)  # the reader keys its entries as it likes
    assert lru.scoped(old).get(("column", "step", "p50")) == "sig1"
    assert lru.scoped(new).get(("column", "step", "p50")) == "sig2"
    assert len(lru) == 6 and lru.nbytes == 60
    lru.discard_scopes(lambda s: s.is_older(new))
    assert lru.scoped(old).get("any key layout") is None
    assert lru.scoped(new).get("any key layout") == 1 and lru.scoped(other).get("any key layout") == 1
    assert len(lru) == 4 and lru.nbytes == 40


def test_scope_is_older():
    a = caches.Scope("e", "r", 1)
    assert caches.Scope("e", "r", 0).is_older(a)
    assert not a.is_older(a)
    assert not caches.Scope("e", "r2", 0).is_older(a) and not caches.Scope("e2", "r", 0).is_older(a)


def test_unbounded_keeps_everything():
    cache = caches.Unbounded()
    for i in range(100):
        cache.put(i, str(i), 10**9)
    assert cache.get(0) == "0" and cache.get(99) == "99" and cache.get(100) is None


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv("TB_STEPSIZE_CACHE_MB", "2")
    assert caches.budget_bytes() == 2 * 2**20
    monkeypatch.setenv("TB_STEPSIZE_CACHE_MB", "junk")
    assert caches.budget_bytes() == 1024 * 2**20
    monkeypatch.setenv("TB_STEPSIZE_CACHE_MB", "0")
    assert caches.budget_bytes() == 1
