"""The plugin's runs: each run's `RunData` under its signature, and the caches of what was read.

`RunStore.get` answers `(scope, RunData)` for a run; the scope
(`caches.Scope`: experiment, run, signature) names every cache entry made
from that data, so when TensorBoard has loaded new data (the signature
changed) the run is read again and the old entries are dropped.

Caching and memory
------------------
Matrices are read one `(metric, stat)` at a time, when a request needs them
(4 bytes per layer-step plus a 1-byte mask).  Byte-bounded LRU caches
(`TB_STEPSIZE_CACHE_MB`, default 1024, = B) hold:

* matrices and histogram tables of runs (`columns`): B;
* pooled matrices (`max_steps` columns; what `heatmap` and `layer` serve):
  B/4;
* run indexes: B/8; encoded (gzipped) `heatmap` and `layer` responses: B/4;
  one layer's histograms: B/8.

The most recently used entry of each is always kept.  So the plugin's own
memory stays below about 1.75 x B plus one matrix larger than B, if any,
while a request is not running; a request pools its matrix in row blocks of
`pooling.POOL_BLOCK_CELLS` cells, so it needs at most a few hundred MB on
top, and a `layer` request holds one matrix at a time.  TensorBoard's loader
holds the event data itself: all logged steps of the statistics, and a
sample of the histograms (see `plugin_loader`).
"""

import dataclasses
import logging
import threading

from tb_stepsize import caches, listing, reader

logger = logging.getLogger(__name__)

RUN_LOCKS = 64
MAX_PROBLEMS = 50


@dataclasses.dataclass
class _Summary:
    """What `tags` says of a run, kept apart from its `RunData` (which may be evicted)."""

    scope: caches.Scope
    fields: dict  # `RunData.summary()`
    problems: list  # the RunData's own list: problems found while reading columns later show up


class RunStore:
    """Reads runs through a data provider and keeps what it read, bounded."""

    def __init__(self, provider, budget=None):
        budget = caches.budget_bytes() if budget is None else budget
        self.provider = provider
        self.catalog = listing.Catalog(provider)
        self.runs = caches.LRU(budget // 8)  # (eid, run) -> (scope, RunData): steps and index
        self.columns = caches.LRU(budget)  # scoped: a run's matrices and histogram tables
        self.pooled = caches.LRU(budget // 4)  # scoped: pooled matrices
        self.responses = caches.LRU(budget // 4)  # scoped: gzipped JSON
        self.layer_histograms = caches.LRU(budget // 8)  # scoped: one layer's (steps, arrays)
        self._summaries = caches.LRU(4 * 2**20)  # (eid, run) -> _Summary
        self._scoped = (self.columns, self.pooled, self.responses, self.layer_histograms)
        self._run_locks = [threading.Lock() for _ in range(RUN_LOCKS)]

    def get(self, ctx, eid, run):
        """`(scope, RunData)` of `run`; `reader.NotFound` if it has no step-size data."""
        listing_ = self.catalog.listing(ctx, eid)
        if run not in listing_.tags:
            raise reader.NotFound(f"no step-size data for run {run!r}")
        signature = self.catalog.signatures(ctx, eid, listing_, [run])[run]
        if signature is None:
            raise reader.NotFound(f"run {run!r} has no readable step-size data")
        return self._read(ctx, listing_, caches.Scope(eid, run, signature))

    def _read(self, ctx, listing_, scope):
        key = scope[:2]
        with self._run_locks[hash(key) % RUN_LOCKS]:
            cached = self.runs.get(key)
            if cached is not None and cached[0] == scope:
                return cached
            data = reader.read_run(
                self.provider,
                ctx,
                scope.experiment,
                scope.run,
                listing_.tags[scope.run],
                cache=self.columns.scoped(scope),
                pooled_cache=self.pooled.scoped(scope),
            )
            if data is None:
                raise reader.NotFound(f"run {scope.run!r} has no readable step-size data")
            old = self._summaries.get(key)
            if old is not None and old.scope == scope:  # read again after eviction: keep what was found
                data.note(old.problems)
            self.runs.put(key, (scope, data), data.nbytes)
            self._summaries.put(key, _Summary(scope, data.summary(), data.problems), 200 + 100 * len(data.layers))
            for lru in self._scoped:  # entries of older signatures can never be hit again
                lru.discard_scopes(lambda s: s.is_older(scope))
            return scope, data

    def histograms(self, scope, data, metric, layer):
        """`data.histograms(metric, layer)`, cached per layer."""
        key = (scope, ("histograms", metric, layer))
        cached = self.layer_histograms.get(key)
        if cached is None:
            cached = data.histograms(metric, layer)
            steps, arrays = cached
            self.layer_histograms.put(key, cached, steps.nbytes + sum(a.nbytes + 100 for a in arrays))
        return cached

    def response(self, scope, key, make):
        """`make()` (gzipped bytes), cached under `scope` and `key`."""
        cached = self.responses.get((scope, key))
        if cached is None:
            cached = make()
            self.responses.put((scope, key), cached, len(cached) + 200)
        return cached

    def summaries(self, ctx, eid):
        """`{run: (RunData.summary() or None, problems)}` of every listed run.

        None for a run without readable data (`problems` says why).  A run
        whose summary is current is not read again; its problems are those
        its `RunData` has found so far, including while reading columns
        after the summary was made.
        """
        listing_ = self.catalog.listing(ctx, eid)
        runs = listing_.runs()
        signatures = self.catalog.signatures(ctx, eid, listing_, runs)
        result = {}
        for run in runs:
            content_problems = list(listing_.tags[run].problems)
            signature = signatures.get(run)
            summary = None
            if signature is not None:
                scope = caches.Scope(eid, run, signature)
                summary = self._summaries.get(scope[:2])
                if summary is None or summary.scope != scope:
                    try:
                        self._read(ctx, listing_, scope)
                        summary = self._summaries.get(scope[:2])
                    except reader.NotFound:
                        summary = None
                    except Exception as e:  # noqa: BLE001 -- one unreadable run must not hide the others
                        logger.exception("stepsize: reading run %r failed", run)
                        content_problems.insert(0, f"reading the run failed: {type(e).__name__}: {e}")
                        summary = None
            if summary is None:
                result[run] = (None, _capped(content_problems) or ["no readable step-size data"])
            else:
                result[run] = (summary.fields, _capped(summary.problems))
        return result


def _capped(problems):
    problems = list(problems)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
    return problems
