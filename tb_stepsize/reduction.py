"""Turns one logged update of the watched variables into per-layer rows.

`Reducer` owns the device-side ring buffer (the last `capacity` logged
updates, read by the host) and decides how each variable is reduced:

* small variables (biases, norms, small kernels) are concatenated into one
  vector and reduced by one segmented reduction at the end of the update,
  so the number of ops per logged step does not grow with their number.
  With `bulk` (one device) their "before" values are snapshot together at
  the start of the update and their gradients come in one list; otherwise
  (one copy of a replicated variable) each leaves its "before" values and
  gradient in a scratch vector at a fixed offset from its own update;
* a large variable is reduced on its own, chunk by chunk, in one pass
  (`stats_kernel.OnePass`), so its temporaries are a few chunks, not copies
  of the variable, and each element is read once.

The metrics and statistics are the framework-neutral `update_stats` and
`stats_kernel` run on TensorFlow tensors (`ops_tf`): every backend computes
the same numbers by the same code; this module only arranges where the
values come from and where the results go (TensorFlow variables).
"""

import functools

import numpy as np
import tensorflow as tf

from tb_stepsize import keras_internals, metadata, stats_kernel, update_stats
from tb_stepsize.ops_tf import OPS

SMALL_MAX = 1 << 16  # elements: variables up to this size share one reduction
CHUNK = 1 << 18  # elements per chunk of a large variable
PARALLEL_CHUNKS = 2  # chunk kernels of one variable that may run at once

ELEMENT_METRICS = update_stats.ELEMENT_METRICS
SCALAR_METRICS = update_stats.SCALAR_METRICS
_flat = OPS.float32  # `x` as a float32 vector (no op for what already is one)


def _put(buffer, index, value):
    """buffer[index] = value, as a scatter: a sliced `assign` costs a copy
    of the whole buffer (tens of MiB for the ring buffer) at every call."""
    buffer.scatter_nd_update(tf.reshape(tf.stack(index), [1, -1]), value[tf.newaxis])


def chunk_length(n, limit):
    """Length of the chunks a large variable of `n` elements is reduced in.

    XLA compiles the chunk kernel once per chunk length, and a shorter tail
    chunk is a second compile (~0.35 s on this CPU).  Most weight shapes are
    products of small factors, so `n` usually splits into equal chunks of
    between `limit / 2` and `limit` elements; otherwise chunks of `limit`
    and a tail.  (Padding the tail instead would cost a mask on every element
    of every logged step.)
    """
    if n <= limit:
        return n
    fewest = -(-n // limit)
    for parts in range(fewest, 2 * fewest + 1):
        if n % parts == 0:
            return n // parts
    return limit


def _over_chunks(n, chunk, summarize, merge, carry):
    """Fold `merge(carry, summarize(start, size))` over [0, n) in chunks of static size.

    A chunk's summary does not depend on the carry, so the loop lets
    `PARALLEL_CHUNKS` iterations run at once: on a CPU the next chunk's
    kernel runs on another core while the first finishes (one XLA kernel
    on the CPU is serial).  The merges stay in chunk order, so the float
    sums are the same every time.
    """
    full, tail = divmod(n, chunk)
    if full == 1 and tail == 0:
        return merge(carry, summarize(0, n))
    if full:
        _, carry = tf.while_loop(
            lambda i, c: i < full,
            lambda i, c: (i + 1, merge(c, summarize(i * chunk, chunk))),
            (tf.constant(0), carry),
            parallel_iterations=PARALLEL_CHUNKS,
        )
    if tail:
        carry = merge(carry, summarize(full * chunk, tail))
    return carry


def _terms(rule, element_metrics, old, new, grad, slots, scalars, decay):
    """Elementwise metrics, and the elementwise terms of the per-layer sums (`update_stats`);
    what is not wanted is never reduced (and XLA drops its computation)."""
    parts = None if rule is None else rule.elementwise(scalars, slots, grad)
    return update_stats.update_terms(OPS, old, new, parts, decay, element_metrics)


# The kernels are pure functions of their tensors, made once per (rule, metrics) and
# shared by every Reducer of the process: a new callback on a model of the same
# shapes (a re-run notebook cell, the next fit of a sweep) calls the same traced
# function, so XLA finds its compiled executable instead of compiling it again.
# No autograph: they have no Python control flow on tensors, and converting the
# statistics code cost about a second of the first `fit`.
def _compiled(fn):
    return tf.function(fn, jit_compile=True, autograph=False)


@functools.lru_cache(maxsize=None)
def _chunk_kernel(rule, element_metrics):
    """One chunk of a large variable to its one-pass summaries and sums: one kernel,
    so its elementwise metrics fuse instead of each filling a chunk-sized array."""

    def chunk_pass(chunk):
        values, terms = _terms(rule, element_metrics, *chunk)
        summaries = {m: stats_kernel.OnePass.of(OPS, values[m]).as_tuple() for m in values}
        return summaries, {k: OPS.accurate_sum(v) for k, v in terms.items()}

    return _compiled(chunk_pass)


def _merge_chunks(carry, part):
    """Running summaries and sums of a large variable, with one more chunk's."""
    (summaries, totals), (more, more_totals) = carry, part
    merged = {m: stats_kernel.OnePass(*summaries[m]).merge(stats_kernel.OnePass(*more[m]), OPS).as_tuple() for m in summaries}
    return merged, {k: totals[k] + more_totals[k] for k in totals}


@functools.lru_cache(maxsize=None)
def _small_kernel(rule, element_metrics, scalar_metrics):
    """Per-row statistics of all small variables, one fused kernel instead of a few
    hundred small ops per logged step; rows not `updated` get NaN and empty histograms.
    `segment_ids` maps each element to its row, `sizes` holds each row's element count."""

    def small_summary(old, new, grad, slots, scalars, decay, updated, segment_ids, sizes):
        groups = sizes.shape[0]
        values, terms = _terms(rule, element_metrics, old, new, grad, slots, scalars, decay)
        stats, hists = {}, {}
        for m, x in values.items():
            stat, hist = stats_kernel.elementwise_stats(OPS, x, segment_ids, groups)
            stats[m] = tf.where(updated[:, tf.newaxis], stat, float("nan"))
            hists[m] = tf.where(updated[:, tf.newaxis], hist, 0)
        sums = {k: OPS.segment_sum(v, segment_ids, groups) for k, v in terms.items()}
        scalar = update_stats.layer_scalars(OPS, sums, sizes, scalar_metrics)
        return stats, hists, {m: tf.where(updated, v, float("nan")) for m, v in scalar.items()}

    return _compiled(small_summary)


class Reducer:
    """Device-side reduction of watched variables into a ring buffer.

    `variables` are the watched Keras variables in row order; `rule` an
    `optimizer_rules.Rule` for `optimizer`, or None (then only `step` and
    `update_ratio`); `metrics`, if given, the metrics wanted (`step` is
    always recorded).  `own_rows` are the rows that `record()` must be
    called for: the large variables, and with `bulk=False` all of them.
    """

    def __init__(self, variables, optimizer, rule, capacity, bulk=True, metrics=None):
        available = ELEMENT_METRICS + SCALAR_METRICS if rule is not None else ("step", "update_ratio")
        wanted = set(available if metrics is None else metrics) | {"step"}
        self.element_metrics = tuple(m for m in ELEMENT_METRICS if m in wanted and m in available)
        self.scalar_metrics = tuple(m for m in SCALAR_METRICS if m in wanted and m in available)
        if not set(self.element_metrics + self.scalar_metrics) - {"step", "update_ratio"}:
            rule = None  # nothing needs the optimizer's slots
        self.optimizer = optimizer
        self.rule = rule
        self.capacity = capacity
        self.chunk = CHUNK
        small_max = SMALL_MAX
        self.sizes = [max(1, int(np.prod(v.shape))) for v in variables]
        self.metrics = [m for m in metadata.METRICS if m in self.element_metrics + self.scalar_metrics]
        rows = len(variables)
        self.small_rows = [r for r, n in enumerate(self.sizes) if n <= small_max]
        self.bulk = bulk
        self.own_rows = [r for r in range(rows) if not bulk or r not in self.small_rows]
        self._small_index = {r: g for g, r in enumerate(self.small_rows)}
        offsets = np.cumsum([0] + [self.sizes[r] for r in self.small_rows])
        self._offsets = offsets
        self._segment_ids = tf.constant(
            np.repeat(np.arange(len(self.small_rows)), [self.sizes[r] for r in self.small_rows]).astype(np.int32)
        )
        self._small_sizes = tf.constant([float(self.sizes[r]) for r in self.small_rows], tf.float32)

        def variable(shape, dtype, fill):
            return tf.Variable(tf.fill(shape, tf.constant(fill, dtype)), trainable=False)

        k, nan = capacity, float("nan")
        self.stats = {m: variable([k, rows, len(stats_kernel.DEVICE_STATS)], tf.float32, nan) for m in self.element_metrics}
        self.stats.update({m: variable([k, rows, 1], tf.float32, nan) for m in self.scalar_metrics})
        self.hists = {m: variable([k, rows, metadata.HIST_BINS], tf.int32, 0) for m in self.element_metrics}
        self.steps = variable([k], tf.int64, -1)
        self.learning_rates = variable([k], tf.float32, nan)  # the learning rate each logged update used
        self.count = variable([], tf.int64, 0)
        # One call reads the whole buffer (one host/device sync per pull).
        self.read = tf.function(
            lambda: (
                self.count.value(),
                self.steps.value(),
                self.learning_rates.value(),
                self._values(self.stats),
                self._values(self.hists),
            ),
            autograph=False,
        )
        if self.small_rows:
            total = int(offsets[-1])
            self._scratch_old = variable([total], tf.float32, 0.0)  # w_old, as begin() or record() saw it
            if not bulk:  # what only each variable's own update sees
                self._scratch_grad = variable([total], tf.float32, 0.0) if rule is not None else None
                self._updated = variable([len(self.small_rows)], tf.bool, False)
            self._small_vars = [variables[r] for r in self.small_rows]
            decays = [float(keras_internals.decays(optimizer, variables[r])) for r in self.small_rows]
            self._decay_mask = tf.constant(np.repeat(decays, [self.sizes[r] for r in self.small_rows]), tf.float32)
            self._small_summary = _small_kernel(self.rule, self.element_metrics, self.scalar_metrics)
        self._chunk_pass = _chunk_kernel(self.rule, self.element_metrics)

    @staticmethod
    def _flat_concat(xs):
        return tf.concat([_flat(x) for x in xs], 0)

    @staticmethod
    def _values(variables):
        return {m: v.value() for m, v in variables.items()}

    @tf.autograph.experimental.do_not_convert
    def record(self, row, slot, before, after, grad, variable, learning_rate, decay):
        """Reduce one variable's logged update (called inside its logged branch).

        `before`/`after` are the variable's values around the update, `grad`
        the float32 gradient the optimizer used, `decay` the decoupled
        weight-decay factor wd * lr for this variable or None.  Small
        variables (only without `bulk`) leave what `end()` cannot read later.
        """
        if row in self._small_index:
            g = self._small_index[row]
            start, end = int(self._offsets[g]), int(self._offsets[g + 1])
            where = tf.range(start, end)[:, tf.newaxis]
            self._scratch_old.scatter_nd_update(where, _flat(before))
            if self.rule is not None:
                self._scratch_grad.scatter_nd_update(where, _flat(grad))
            _put(self._updated, [g], tf.constant(True))
            return
        scalars, slots = {}, {}
        if self.rule is not None:
            scalars = self.rule.scalars(self.optimizer, learning_rate)
            slots = {k: _flat(v) for k, v in self.rule.slots(self.optimizer, variable).items()}
        self._record_large(row, slot, _flat(before), _flat(after), _flat(grad), slots, scalars, decay)

    def _record_large(self, row, slot, old, new, grad, slots, scalars, decay):
        n = self.sizes[row]

        def cut(start, size):
            """The `_elementwise` arguments for elements [start, start + size).

            Cut outside the compiled pass, so that it sees chunk-sized
            arrays: compiled once per chunk size, not per variable size.
            """
            piece = lambda x: tf.slice(x, [start], [size])  # noqa: E731
            return piece(old), piece(new), piece(grad), {k: piece(v) for k, v in slots.items()}, scalars, decay

        sum_names = ("delta_sq", "old_sq") + (() if self.rule is None else ("lost", "norm_sq"))
        carry = (
            {m: stats_kernel.OnePass.empty(OPS).as_tuple() for m in self.element_metrics},
            {k: tf.zeros([]) for k in sum_names},
        )
        chunk = chunk_length(n, self.chunk)
        summaries, totals = _over_chunks(n, chunk, lambda start, size: self._chunk_pass(cut(start, size)), _merge_chunks, carry)
        for m, summary in summaries.items():
            stats, hist = stats_kernel.OnePass(*summary).finish(OPS)
            _put(self.stats[m], [slot, row], stats[0])
            _put(self.hists[m], [slot, row], hist[0])
        for m, value in update_stats.layer_scalars(OPS, totals, float(n), self.scalar_metrics).items():
            _put(self.stats[m], [slot, row], tf.reshape(value, [1]))

    # -------------------------------------------------- per logged update
    @tf.autograph.experimental.do_not_convert
    def begin(self, slot):
        """Clear `slot` before the variables of a logged update record into it."""
        for buf in self.stats.values():
            _put(buf, [slot], tf.fill(buf.shape[1:], float("nan")))
        for buf in self.hists.values():
            _put(buf, [slot], tf.zeros(buf.shape[1:], tf.int32))
        if self.small_rows and self.bulk:
            self._scratch_old.assign(self._flat_concat([v.value for v in self._small_vars]))
        elif self.small_rows:
            self._updated.assign(tf.zeros_like(self._updated))

    @tf.autograph.experimental.do_not_convert
    def end(self, slot, t, learning_rate, grads):
        """Reduce the small variables together and publish the slot as step `t`
        with the `learning_rate` Keras passed to this update.

        `grads` maps the rows of the small variables this update changed to
        their float32 gradients (with `bulk`; ignored otherwise).
        """
        if self.small_rows:
            self._reduce_small(slot, learning_rate, grads)
        _put(self.learning_rates, [slot], tf.cast(learning_rate, tf.float32))
        _put(self.steps, [slot], t)
        self.count.assign_add(1)

    def _reduce_small(self, slot, learning_rate, grads):
        groups = len(self.small_rows)
        new = self._flat_concat([v.value for v in self._small_vars])  # all updated by now
        if self.bulk:
            updated = tf.constant([r in grads for r in self.small_rows])
        else:
            updated = self._updated.read_value()
        scalars, slots, grad, decay = {}, {}, None, None
        if self.rule is not None:
            scalars = self.rule.scalars(self.optimizer, learning_rate)
            per_var = [self.rule.slots(self.optimizer, v.value) for v in self._small_vars]
            slots = {k: self._flat_concat([s[k] for s in per_var]) for k in per_var[0]}
            if self.bulk:
                grad = self._flat_concat([grads.get(r, tf.zeros([self.sizes[r]])) for r in self.small_rows])
            else:
                grad = self._scratch_grad.read_value()
            if self.optimizer.weight_decay is not None:
                decay = self._decay_mask * (tf.cast(self.optimizer.weight_decay, tf.float32) * tf.cast(learning_rate, tf.float32))
        stats, hists, scalar = self._small_summary(
            self._scratch_old.read_value(), new, grad, slots, scalars, decay, updated, self._segment_ids, self._small_sizes
        )
        index = tf.stack([tf.fill([groups], slot), tf.constant(self.small_rows, tf.int32)], 1)
        for m in stats:
            self.stats[m].scatter_nd_update(index, stats[m])
            self.hists[m].scatter_nd_update(index, hists[m])
        for m, value in scalar.items():
            self.stats[m].scatter_nd_update(index, value[:, tf.newaxis])
