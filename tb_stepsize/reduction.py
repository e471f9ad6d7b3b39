"""Turns one logged update of the watched variables into per-layer rows.

`Reducer` owns the device-side ring buffer (the last `capacity` logged
updates, read by the host) and decides how each variable is reduced:

* small variables (biases, norms, small kernels) write their elementwise
  metrics into a scratch vector at a fixed offset; at the end of the update
  one segmented reduction handles all of them, so the number of ops per
  logged step does not grow with the number of small variables;
* a large variable is reduced on its own, chunk by chunk, in two passes
  (see `device_stats`), so its temporaries are a few chunks, not copies of
  the variable.

Elementwise metrics: `step` = |w_old - w_new| (in float32, after the update
was rounded into the variable's dtype) and, with an optimizer rule,
`effective_lr` and `intended_step` (the rule's update plus decoupled weight
decay, before rounding).  Per-layer scalars: `update_ratio` =
rms(Δw) / rms(w_old) (NaN when w_old is all zero), `lost_fraction` = share of
elements with a non-zero intended step and a zero applied step, and
`second_moment_rms` = rms(g / sqrt(v_hat)).
"""

import numpy as np
import tensorflow as tf

from tb_stepsize import device_stats, metadata

SMALL_MAX = 1 << 16  # elements: variables up to this size share one reduction
CHUNK = 1 << 18  # elements per chunk of a large variable

ELEMENT_METRICS = ("step", "effective_lr", "intended_step")
SCALAR_METRICS = ("update_ratio", "lost_fraction", "second_moment_rms")


def _over_chunks(n, chunk, body, carry):
    """Fold `body(start, size, carry)` over [0, n) in chunks of static size."""
    full, tail = divmod(n, chunk)
    if full == 1 and tail == 0:
        return body(0, n, carry)
    if full:
        _, carry = tf.while_loop(
            lambda i, c: i < full,
            lambda i, c: (i + 1, body(i * chunk, chunk, c)),
            (tf.constant(0), carry),
            parallel_iterations=1,
        )
    if tail:
        carry = body(full * chunk, tail, carry)
    return carry


class Reducer:
    """Device-side reduction of watched variables into a ring buffer.

    `variables` are the watched Keras variables in row order; `rule` an
    `optimizer_rules.Rule` for `optimizer`, or None (then only `step` and
    `update_ratio`).
    """

    def __init__(self, variables, optimizer, rule, capacity):
        self.optimizer = optimizer
        self.rule = rule
        self.capacity = capacity
        self.chunk = CHUNK
        small_max = SMALL_MAX
        self.sizes = [max(1, int(np.prod(v.shape))) for v in variables]
        if rule is None:
            self.element_metrics, self.scalar_metrics = ("step",), ("update_ratio",)
        else:
            self.element_metrics, self.scalar_metrics = ELEMENT_METRICS, SCALAR_METRICS
        self.metrics = [m for m in metadata.METRICS if m in self.element_metrics + self.scalar_metrics]
        rows = len(variables)
        self.small_rows = [r for r, n in enumerate(self.sizes) if n <= small_max]
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
        self.stats = {m: variable([k, rows, len(device_stats.DEVICE_STATS)], tf.float32, nan) for m in self.element_metrics}
        self.stats.update({m: variable([k, rows, 1], tf.float32, nan) for m in self.scalar_metrics})
        self.hists = {m: variable([k, rows, metadata.HIST_BINS], tf.int32, 0) for m in self.element_metrics}
        self.steps = variable([k], tf.int64, -1)
        self.count = variable([], tf.int64, 0)
        if self.small_rows:
            total = int(offsets[-1])
            self._scratch = {m: variable([total], tf.float32, 0.0) for m in self.element_metrics}
            # Per small variable: sum of w_old^2, sum of normalized_grad^2, updated?
            self._sums = variable([len(self.small_rows), 2], tf.float32, 0.0)
            self._updated = variable([len(self.small_rows)], tf.bool, False)

    # -------------------------------------------------------------- metrics
    def _elementwise(self, old, new, grad, slots, scalars, decay):
        """Elementwise metrics and partial sums of flat float32 slices."""
        delta = old - new
        out = {"step": tf.abs(delta)}
        sums = {"delta_sq": tf.reduce_sum(tf.square(delta)), "old_sq": tf.reduce_sum(tf.square(old))}
        if self.rule is not None:
            parts = self.rule.elementwise(scalars, slots, grad)
            update = parts["update"] if decay is None else parts["update"] + old * decay
            out["effective_lr"] = parts["effective_lr"]
            out["intended_step"] = tf.abs(update)
            sums["lost"] = tf.reduce_sum(tf.cast((update != 0) & (delta == 0), tf.float32))
            sums["norm_sq"] = tf.reduce_sum(tf.square(parts["normalized_grad"]))
        return out, sums

    def record(self, row, slot, before, after, grad, variable, learning_rate, decay):
        """Reduce one variable's logged update (called inside its logged branch).

        `before`/`after` are the variable's values around the update, `grad`
        the float32 gradient the optimizer used, `decay` the decoupled
        weight-decay factor wd * lr for this variable or None.
        """
        scalars, slots = ({}, {}) if self.rule is None else self.rule.prepare(self.optimizer, variable, learning_rate)
        flat = lambda x: tf.reshape(tf.cast(x, tf.float32), [-1])  # noqa: E731
        old, new, grad = flat(before), flat(after), flat(grad)
        slots = {k: tf.reshape(v, [-1]) for k, v in slots.items()}
        if row in self._small_index:
            self._record_small(row, old, new, grad, slots, scalars, decay)
        else:
            self._record_large(row, slot, old, new, grad, slots, scalars, decay)

    def _record_small(self, row, old, new, grad, slots, scalars, decay):
        g = self._small_index[row]
        start, end = int(self._offsets[g]), int(self._offsets[g + 1])
        values, sums = self._elementwise(old, new, grad, slots, scalars, decay)
        for m, x in values.items():
            self._scratch[m][start:end].assign(x)
        self._sums[g].assign(tf.stack([sums["old_sq"], sums.get("norm_sq", tf.constant(0.0))]))
        self._updated[g].assign(True)

    def _record_large(self, row, slot, old, new, grad, slots, scalars, decay):
        n = self.sizes[row]

        def piece(start, size):
            cut = lambda x: tf.slice(x, [start], [size])  # noqa: E731
            return self._elementwise(
                cut(old), cut(new), cut(grad), {k: cut(v) for k, v in slots.items()}, scalars, decay
            )

        def first_pass(start, size, carry):
            values, sums = piece(start, size)
            partials, totals = carry
            partials = {
                m: device_stats.Partials(*partials[m]).merge(device_stats.Partials.of(values[m])).as_tuple()
                for m in values
            }
            return partials, {k: totals[k] + sums[k] for k in totals}

        sum_names = ("delta_sq", "old_sq") + (() if self.rule is None else ("lost", "norm_sq"))
        carry = (
            {m: device_stats.Partials.empty(1).as_tuple() for m in self.element_metrics},
            {k: tf.zeros([]) for k in sum_names},
        )
        partials, totals = _over_chunks(n, self.chunk, first_pass, carry)
        partials = {m: device_stats.Partials(*p) for m, p in partials.items()}
        targets = {m: device_stats.QuantileTargets(p) for m, p in partials.items()}

        def second_pass(start, size, fine):
            values, _ = piece(start, size)
            return {m: fine[m] + device_stats.fine_counts(values[m], targets[m]) for m in fine}

        fine = _over_chunks(n, self.chunk, second_pass, {m: tf.zeros([1, 2 * len(metadata.QUANTILES), 64], tf.int32) for m in partials})
        for m, p in partials.items():
            self.stats[m][slot, row].assign(device_stats.finish(p, targets[m], fine[m])[0])
            self.hists[m][slot, row].assign(p.hist[0])
        scalar = self._scalars(totals["delta_sq"], totals["old_sq"], totals.get("lost"), totals.get("norm_sq"), float(n))
        for m, value in scalar.items():
            self.stats[m][slot, row].assign(tf.reshape(value, [1]))

    def _scalars(self, delta_sq, old_sq, lost, norm_sq, n):
        """Per-layer scalar metrics from sums over a variable's elements."""
        out = {"update_ratio": tf.where(old_sq > 0, tf.sqrt(delta_sq / tf.where(old_sq > 0, old_sq, 1.0)), float("nan"))}
        if self.rule is not None:
            out["lost_fraction"] = lost / n
            out["second_moment_rms"] = tf.sqrt(norm_sq / n)
        return out

    # -------------------------------------------------- per logged update
    def begin(self, slot):
        """Clear `slot` before the variables of a logged update record into it."""
        for buf in self.stats.values():
            buf[slot].assign(tf.fill(buf.shape[1:], float("nan")))
        for buf in self.hists.values():
            buf[slot].assign(tf.zeros(buf.shape[1:], tf.int32))
        if self.small_rows:
            self._updated.assign(tf.zeros_like(self._updated))

    def end(self, slot, t):
        """Reduce the small variables together and publish the slot as step `t`."""
        if self.small_rows:
            self._reduce_small(slot)
        self.steps[slot].assign(t)
        self.count.assign_add(1)

    def _reduce_small(self, slot):
        groups = len(self.small_rows)
        seg = self._segment_ids
        values = {m: self._scratch[m].read_value() for m in self.element_metrics}
        updated = self._updated.read_value()
        index = tf.stack([tf.fill([groups], slot), tf.constant(self.small_rows, tf.int32)], 1)
        for m, x in values.items():
            stats, hist = device_stats.elementwise_stats(x, seg, groups)
            self.stats[m].scatter_nd_update(index, tf.where(updated[:, tf.newaxis], stats, float("nan")))
            self.hists[m].scatter_nd_update(index, tf.where(updated[:, tf.newaxis], hist, 0))
        sums = self._sums.read_value()
        step = values["step"]
        lost = None
        if self.rule is not None:
            lost = tf.math.unsorted_segment_sum(
                tf.cast((values["intended_step"] != 0) & (step == 0), tf.float32), seg, groups
            )
        scalar = self._scalars(
            tf.math.unsorted_segment_sum(tf.square(step), seg, groups), sums[:, 0], lost, sums[:, 1], self._small_sizes
        )
        for m, value in scalar.items():
            self.stats[m].scatter_nd_update(index, tf.where(updated, value, float("nan"))[:, tf.newaxis])
