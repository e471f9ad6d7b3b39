"""One logged update of the watched variables, reduced group by group on the
JAX and torch backends.

The TensorFlow path has its own graph-mode reducer (`reduction`); the JAX
and torch monitors share this one, because there a logged update is plain
arrays: the values of each variable before and after Keras' update, the
gradients Keras passed to `_backend_update_step` (after clipping and
accumulation) and the optimizer's slots, all on the device.  Variables are
reduced in *groups*, the same split as on TensorFlow: every small variable
(<= `SMALL_MAX` elements) concatenated into one vector with segment ids, so
the ops of a logged step do not grow with the number of variables, and each
large variable on its own.

The arithmetic is the core's (`update_stats`, over the backend's `ops`
adapter); the optimizer's formulas are `optimizer_rules` (`keras.ops`, so
they run on either backend's arrays).  What crosses to the host is small:
per group `[G, S]` statistics, `[G, HIST_BINS]` histograms and `[G]`
scalars, which `assemble` puts into the `[L, ...]` rows `StepOutput` takes
(rows a step did not update: NaN statistics and empty histograms).
"""

import numpy as np
from keras import ops as kops

from tb_stepsize import keras_internals, metadata, stats_kernel, update_stats

SMALL_MAX = 1 << 16  # elements: variables up to this size share one reduction
CHUNK = 1 << 18  # elements per chunk of a large variable (torch)


def chosen_metrics(rule, metrics):
    """The metrics to record, in `metadata.METRICS` order: those asked for
    (default all) that the optimizer allows, `step` always."""
    available = update_stats.available(rule is not None)
    wanted = set(available if metrics is None else metrics) | {"step"}
    return [m for m in metadata.METRICS if m in wanted and m in available]


def needs_rule(metrics):
    """Whether any of `metrics` reads the optimizer's slots."""
    return bool(update_stats.RULE_METRICS & set(metrics))


def _flat(x):
    return kops.reshape(kops.cast(x, "float32"), [-1])


def _concat(xs):
    xs = [_flat(x) for x in xs]
    return xs[0] if len(xs) == 1 else kops.concatenate(xs, 0)


def gradient_as_used(gradient, variable):
    """The gradient in float32 as the optimizer applies it: cast to the variable's dtype first."""
    return kops.cast(kops.cast(gradient, variable.dtype), "float32")


class Groups:
    """How the variables of one update (rows, sizes, whether each decays) split into groups.

    `entries` is a list of `(row, variable)` for the watched variables Keras
    passed to this update, in the order it passed them.
    """

    def __init__(self, optimizer, entries, small_max=None):
        small_max = SMALL_MAX if small_max is None else small_max
        size = lambda v: max(1, int(np.prod(v.shape)))  # noqa: E731
        small = [(r, v) for r, v in entries if size(v) <= small_max]
        self.groups = ([small] if small else []) + [[(r, v)] for r, v in entries if size(v) > small_max]
        self.optimizer = optimizer
        self._sizes = [[size(v) for _, v in g] for g in self.groups]
        self._decays = [[keras_internals.decays(optimizer, v) for _, v in g] for g in self.groups]

    def rows(self):
        return [[r for r, _ in g] for g in self.groups]

    def segment_ids(self, index):
        """int32 segment ids of group `index`'s concatenation (None for one variable)."""
        sizes = self._sizes[index]
        if len(sizes) == 1:
            return None
        return np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)

    def sizes(self, index):
        """float32 element counts of group `index`'s variables."""
        return np.asarray(self._sizes[index], np.float32)

    def decay(self, index, learning_rate):
        """Per-element decoupled weight-decay factor wd * lr of group `index` (None without decay)."""
        if self.optimizer.weight_decay is None or not any(self._decays[index]):
            return None
        factor = kops.cast(self.optimizer.weight_decay, "float32") * kops.cast(learning_rate, "float32")
        if all(self._decays[index]):
            return factor
        mask = np.repeat(np.asarray(self._decays[index], np.float32), self._sizes[index])
        return kops.convert_to_tensor(mask) * factor


def group_inputs(optimizer, rule, variables, old, new, grads, learning_rate, cut=None):
    """Flat float32 `(old, new, parts)` of one group (of its slice `cut(flat)`, if given).

    `old`/`new`/`grads` are the group's arrays in the order of `variables`;
    `parts` (None without a rule) are the rule's `effective_lr`, `update`
    and `normalized_grad`, evaluated after Keras' update (slots hold this
    step's moments, `iterations` is still t - 1).  A slice is cut before the
    rule runs, so a chunk of a large variable costs chunk-sized temporaries.
    """
    cut = cut or (lambda x: x)
    old, new = cut(_concat(old)), cut(_concat(new))
    if rule is None:
        return old, new, None
    scalars = rule.scalars(optimizer, learning_rate)
    # `.value`: inside a JAX stateless scope, the scope's (updated) value.
    slots = [{k: s.value for k, s in rule.slots(optimizer, v).items()} for v in variables]
    slots = {k: cut(_concat([s[k] for s in slots])) for k in slots[0]}
    grad = cut(_concat([gradient_as_used(g, v) for g, v in zip(grads, variables)]))
    return old, new, rule.elementwise(scalars, slots, grad)


def reduce_group(ops, groups, index, inputs, learning_rate, metrics):
    """`update_stats.reduce_update` of group `index`: `(stats, hists, scalars)` on the device."""
    old, new, parts = inputs
    segment_ids, sizes = groups.segment_ids(index), None
    if segment_ids is not None:  # constants of the compiled step (JAX) or on Keras' device (torch)
        segment_ids, sizes = kops.convert_to_tensor(segment_ids), kops.convert_to_tensor(groups.sizes(index))
    return update_stats.reduce_update(
        ops,
        old,
        new,
        parts=parts,
        decay=groups.decay(index, learning_rate),
        segment_ids=segment_ids,
        segments=len(groups.groups[index]),
        sizes=sizes,
        wanted=metrics,
    )


def assemble(n_rows, metrics, results):
    """`[L, ...]` numpy rows for `StepOutput.write` from `[(rows, (stats, hists, scalars))]` on the host."""
    nan = float("nan")
    stats, hists = {}, {}
    for m in metrics:
        if m in update_stats.ELEMENT_METRICS:
            stats[m] = np.full((n_rows, len(stats_kernel.DEVICE_STATS)), nan, np.float32)
            hists[m] = np.zeros((n_rows, metadata.HIST_BINS), np.int64)
        else:
            stats[m] = np.full((n_rows, 1), nan, np.float32)
    for rows, (g_stats, g_hists, g_scalars) in results:
        for m in metrics:
            if m in hists:
                stats[m][rows] = np.asarray(g_stats[m], np.float32)
                hists[m][rows] = np.asarray(g_hists[m])
            else:
                stats[m][rows, 0] = np.asarray(g_scalars[m], np.float32)
    return stats, hists


class Capture:
    """What the JAX and torch captures share: the watched rows, the logging
    schedule, the on/off switch, the two hooks on the optimizer, and one
    logged update reduced group by group with `ops`.

    A subclass defines `_hook_apply(grads, trainable_variables)` and
    `_hook_update_all(grads, trainable_variables, learning_rate)`.
    """

    def __init__(self, optimizer, watched, rule, metrics, every_n_steps, accumulation):
        self._optimizer = optimizer
        self._rule = rule
        self._metrics = metrics
        self._rows = {keras_internals.variable_key(optimizer, v): r for r, v in enumerate(watched)}
        self.every_n_steps = every_n_steps
        self._accumulation = accumulation
        self.active = True
        self._before = None  # [(row, variable, value before the update)] of the update being made
        self._hooks = keras_internals.Hooks(optimizer, apply_gradients=self._hook_apply, update_all=self._hook_update_all)
        self._originals = self._hooks.original

    def remove(self):
        self.active = False
        self._hooks.remove()

    def _values_before(self, trainable_variables, read):
        """`[(row, variable, read(variable))]` of the watched ones among `trainable_variables`."""
        out = []
        for v in trainable_variables:
            row = self._rows.get(keras_internals.variable_key(self._optimizer, v))
            if row is not None:
                out.append((row, v, read(v)))
        return out

    def _reduce_update(self, ops, before, grads, trainable_variables, learning_rate, reduce=None):
        """`[(rows, (stats, hists, scalars))]` of one update, on the device.

        `reduce(groups, index, variables, old, new, grads)` may replace the
        one-call reduction of a group (torch chunks large variables).
        """
        by_variable = {id(v): g for g, v in zip(grads, trainable_variables)}
        old = {row: value for row, _, value in before}
        groups = Groups(self._optimizer, [(row, v) for row, v, _ in before if id(v) in by_variable])
        results = []
        for index, group in enumerate(groups.groups):
            variables = [v for _, v in group]
            args = ([old[r] for r, _ in group], [v.value for v in variables], [by_variable[id(v)] for v in variables])
            if reduce is not None:
                result = reduce(groups, index, variables, *args)
            else:
                inputs = group_inputs(self._optimizer, self._rule, variables, *args, learning_rate)
                result = reduce_group(ops, groups, index, inputs, learning_rate, self._metrics)
            results.append(result)
        return list(zip(groups.rows(), results))
