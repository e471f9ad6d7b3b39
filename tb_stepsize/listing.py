"""Which runs hold step-size data, what their tags are, and when their data changed.

A run's tags are parsed and sorted by kind once, into a `RunTags` (both
`load` and the plugin read a run from it).  The plugin keeps one `Listing`
per experiment in a `Catalog`, which also answers a run's *signature*: it
changes whenever TensorBoard has loaded new data for the run, so caches keyed
by it never serve stale data.

Costs, with TensorBoard's Python loader: the full tag listing walks every
stored event of every tag, so the `Catalog` makes it synchronously only for
the first request of an experiment and when runs come or go (checked at
most once per `LISTING_TTL_SECS`), and re-makes it in a background thread
(the old one serving meanwhile) when a run's index tags moved on or every
`DISCOVERY_TTL_SECS`.  A signature only asks for a run's few index tags,
at most once per `LISTING_TTL_SECS`, so new steps show up at most that long
after TensorBoard loaded them.
"""

import collections
import dataclasses
import logging
import threading
import time

from tensorboard.data import provider as tb_provider

from tb_stepsize import metadata

logger = logging.getLogger(__name__)

LISTING_TTL_SECS = 1.0  # how long a run's signature / the run list may be reused
DISCOVERY_TTL_SECS = 30.0  # the full tag listing is re-made at least this often
MAX_EXPERIMENTS = 16  # listings kept (one per experiment id; local TensorBoard uses "")


@dataclasses.dataclass
class RunTags:
    """One run's step-size tags, by kind: `{tag: parsed content}` each, sorted by tag.

    `problems` names the tags whose content could not be parsed (newer
    format, garbage, ...), `names` holds every tag name.
    """

    index: dict
    stats: dict
    histogram: dict
    problems: list
    names: frozenset

    @classmethod
    def classify(cls, contents):
        """From `{tag: content or FormatError}` (what `parse_contents` returns)."""
        by_kind = {kind: {} for kind in (metadata.KIND_INDEX, metadata.KIND_STATS, metadata.KIND_HISTOGRAM)}
        problems = []
        for tag, content in sorted(contents.items()):
            if isinstance(content, Exception):
                problems.append(f"{tag}: {content}")
            else:
                by_kind[content["kind"]][tag] = content
        return cls(
            index=by_kind[metadata.KIND_INDEX],
            stats=by_kind[metadata.KIND_STATS],
            histogram=by_kind[metadata.KIND_HISTOGRAM],
            problems=problems,
            names=frozenset(contents),
        )

    @property
    def listed(self):
        """True if the run is worth listing: readable index tags or a problem to report."""
        return bool(self.index or self.problems)


def list_series(provider, ctx, experiment_id=""):
    """{run: {tag: TensorTimeSeries}} of every step-size tag (both plugin names)."""
    runs = {}
    for plugin_name in (metadata.PLUGIN_NAME, metadata.HISTOGRAM_PLUGIN_NAME):
        listed = provider.list_tensors(ctx, experiment_id=experiment_id, plugin_name=plugin_name) or {}
        for run, tags in listed.items():
            runs.setdefault(run, {}).update(tags)
    return runs


def parse_contents(series):
    """{tag: content or FormatError} of `{tag: TensorTimeSeries}`."""
    parsed = {}
    for tag, ts in series.items():
        try:
            parsed[tag] = metadata.parse_content(ts.plugin_content)
        except metadata.FormatError as e:
            parsed[tag] = e
        except Exception as e:  # noqa: BLE001 -- garbage content must not break a run
            parsed[tag] = metadata.FormatError(f"unreadable plugin content: {e}")
    return parsed


def list_runs(provider, ctx, experiment_id=""):
    """{run: RunTags} of every run with step-size tags."""
    return {run: RunTags.classify(parse_contents(tags)) for run, tags in list_series(provider, ctx, experiment_id).items()}


class Listing:
    """One experiment's step-size runs as listed at one time, with their index tags' state then."""

    def __init__(self, series, all_runs):
        self.all_runs = all_runs  # every run name (any plugin) when listed, or None
        self.tags = {run: RunTags.classify(parse_contents(s)) for run, s in series.items()}
        # (tag, max_step, max_wall_time) of each run's index tags when listed
        self.index_state = {
            run: tuple((t, series[run][t].max_step, series[run][t].max_wall_time) for t in tags.index)
            for run, tags in self.tags.items()
        }
        self.signatures = {}  # run -> (time, signature), filled by the Catalog
        self.created = self.checked = time.monotonic()

    def runs(self):
        """Runs with at least one readable index tag or a reported problem."""
        return sorted(run for run, tags in self.tags.items() if tags.listed)

    def has_data(self):
        return any(tags.index for tags in self.tags.values())


class Catalog:
    """The listings of an experiment's runs and their signatures, over a data provider."""

    def __init__(self, provider):
        self._provider = provider
        self._listings = collections.OrderedDict()  # eid -> Listing, at most MAX_EXPERIMENTS
        self._discovering = set()  # eids whose listing is being re-made
        self._lock = threading.Lock()

    def listing(self, ctx, eid):
        """The experiment's `Listing` (see the module docstring for when it is re-made)."""
        with self._lock:
            listing = self._listings.get(eid)
        if listing is None:
            return self._discover(ctx, eid)
        now = time.monotonic()
        if now - listing.checked > LISTING_TTL_SECS:
            listing.checked = now
            if self._all_runs(ctx, eid) != listing.all_runs:
                return self._discover(ctx, eid)
        if now - listing.created > DISCOVERY_TTL_SECS:
            self._discover_in_background(ctx, eid)
        return listing

    def signatures(self, ctx, eid, listing, runs):
        """`{run: signature or None}` (None: no index tag is readable now).

        A signature holds the (tag, max_step, max_wall_time) of the run's
        index tags, asked of the provider, and the run's tag names from the
        listing.  When the index tags moved on, new tags may have come too:
        the listing is re-made in the background.
        """
        now = time.monotonic()
        result, stale = {}, []
        for run in runs:
            cached = listing.signatures.get(run)
            if cached is not None and now - cached[0] <= LISTING_TTL_SECS:
                result[run] = cached[1]
            else:
                stale.append(run)
        if not stale:
            return result
        tags = sorted({t for run in stale for t in listing.tags[run].index})
        current = {}
        if tags:
            current = self._provider.list_tensors(
                ctx,
                experiment_id=eid,
                plugin_name=metadata.PLUGIN_NAME,
                run_tag_filter=tb_provider.RunTagFilter(runs=stale, tags=tags),
            )
        moved = False
        for run in stale:
            signature = None
            series = current.get(run, {})
            state = tuple(
                (t, series[t].max_step, series[t].max_wall_time) for t in listing.tags[run].index if t in series
            )
            if state:
                signature = (state, listing.tags[run].names)
                moved = moved or state != listing.index_state[run]
            listing.signatures[run] = (now, signature)
            result[run] = signature
        if moved:
            self._discover_in_background(ctx, eid)
        return result

    def _discover(self, ctx, eid):
        all_runs = self._all_runs(ctx, eid)
        listing = Listing(list_series(self._provider, ctx, eid), all_runs)
        with self._lock:
            self._listings[eid] = listing
            self._listings.move_to_end(eid)
            while len(self._listings) > MAX_EXPERIMENTS:
                self._listings.popitem(last=False)
        return listing

    def _all_runs(self, ctx, eid):
        try:
            return frozenset(r.run_name for r in self._provider.list_runs(ctx, experiment_id=eid))
        except Exception:  # noqa: BLE001 -- a provider without list_runs: rely on the TTL
            return None

    def _discover_in_background(self, ctx, eid):
        with self._lock:
            if eid in self._discovering:
                return
            self._discovering.add(eid)

        def work():
            try:
                self._discover(ctx, eid)
            except Exception:  # noqa: BLE001
                logger.exception("stepsize: listing tags failed")
            finally:
                with self._lock:
                    self._discovering.discard(eid)

        threading.Thread(target=work, name="stepsize-listing", daemon=True).start()
