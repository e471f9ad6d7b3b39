"""The metrics of one logged update, written once for every framework.

Given a variable's flat float32 values before and after the optimizer's
update (after it was rounded into the variable's dtype) and, for
optimizers with a known formula, the formula's `parts`:

* `step` = |w_old - w_new|, the applied step;
* `effective_lr` = the per-parameter factor the first moment is multiplied by;
* `intended_step` = |update + decay * w_old|, the step before rounding, with
  decoupled weight decay (`decay` = wd * lr, or None);
* `update_ratio` = rms(Δw) / rms(w_old) per layer (NaN when w_old is all zero);
* `lost_fraction` = share of elements with a non-zero intended step and a
  zero applied step (updates rounded away by a low-precision dtype);
* `second_moment_rms` = rms(g / sqrt(v_hat)) per layer (about 1 when Adam's
  second moment keeps up with the gradient).

The elementwise metrics become `stats_kernel` statistics and histograms;
the per-layer ones come from sums of elementwise terms, so they combine
across chunks and shards by adding.  Everything goes through an `ops`
adapter (`ops_numpy`, `ops_torch`, `ops_jax`).
"""

from tb_stepsize import stats_kernel

ELEMENT_METRICS = ("step", "effective_lr", "intended_step")
SCALAR_METRICS = ("update_ratio", "lost_fraction", "second_moment_rms")
RULE_METRICS = frozenset(("effective_lr", "intended_step", "lost_fraction", "second_moment_rms"))
ALL_METRICS = ELEMENT_METRICS + SCALAR_METRICS


def available(has_rule):
    """The metrics an optimizer with (or without) a formula can report."""
    return ALL_METRICS if has_rule else ("step", "update_ratio")


def update_terms(ops, old, new, parts=None, decay=None, wanted=ALL_METRICS):
    """Elementwise metrics (`{name: flat array}`, magnitudes) and the elementwise
    terms of the per-layer sums (`{name: flat array}`) of one flat update."""
    delta = old - new
    metrics = {"step": delta}
    terms = {"delta_sq": delta * delta, "old_sq": old * old}
    if parts is not None:
        update = parts["update"] if decay is None else parts["update"] + old * decay
        metrics["effective_lr"] = parts["effective_lr"]
        metrics["intended_step"] = update
        terms["lost"] = ops.cast((update != 0) & (delta == 0), "float32")
        terms["norm_sq"] = parts["normalized_grad"] * parts["normalized_grad"]
    # The kernel takes magnitudes from the bit pattern: no abs() pass needed.
    return {m: x for m, x in metrics.items() if m in wanted}, terms


def layer_scalars(ops, sums, n, wanted=ALL_METRICS):
    """Per-layer scalar metrics from sums of `update_terms`' terms over `n` elements."""
    old_sq = sums["old_sq"]
    positive = old_sq > 0
    ratio = ops.sqrt(sums["delta_sq"] / ops.where(positive, old_sq, 1.0))
    out = {"update_ratio": ops.where(positive, ratio, float("nan"))}
    if "lost" in sums:
        out["lost_fraction"] = sums["lost"] / n
        out["second_moment_rms"] = ops.sqrt(sums["norm_sq"] / n)
    return {m: v for m, v in out.items() if m in wanted}


def reduce_update(ops, old, new, parts=None, decay=None, segment_ids=None, segments=1, sizes=None, wanted=ALL_METRICS):
    """All metrics of one update in one go: `(stats {m: [G, S]}, hists {m: [G, HIST_BINS]},
    scalars {m: [G]})`.  With `segment_ids`, `old`/`new`/`parts` are many variables
    concatenated and `sizes` (`[G]` float32) their element counts."""
    metrics, terms = update_terms(ops, old, new, parts, decay, wanted)
    stats, hists = {}, {}
    for m, x in metrics.items():
        stats[m], hists[m] = stats_kernel.elementwise_stats(ops, x, segment_ids, segments)
    if segment_ids is None:
        sums = {k: ops.reshape(ops.accurate_sum(v), (1,)) for k, v in terms.items()}
        n = float(old.shape[0])
    else:
        sums = {k: ops.segment_sum(v, segment_ids, segments) for k, v in terms.items()}
        n = sizes
    return stats, hists, layer_scalars(ops, sums, n, wanted)


def reduce_chunked(ops, n, piece, chunk, wanted=ALL_METRICS):
    """`reduce_update` of one big variable of `n` elements, `chunk` at a time, so
    temporaries stay chunk-sized.  `piece(start, size)` returns that slice's
    `(old, new, parts, decay)`.  Two passes (the quantiles' second pass needs
    the first's targets); an eager Python loop -- under `jax.jit` compose the
    `stats_kernel` functions with the framework's own loop instead."""
    starts = range(0, n, chunk)
    partials, sums = None, None
    for start in starts:
        metrics, terms = update_terms(ops, *piece(start, min(chunk, n - start)), wanted=wanted)
        first = {m: stats_kernel.Partials.of(ops, x) for m, x in metrics.items()}
        chunk_sums = {k: ops.accurate_sum(v) for k, v in terms.items()}
        if partials is None:
            partials, sums = first, chunk_sums
        else:
            partials = {m: partials[m].merge(p, ops) for m, p in first.items()}
            sums = {k: sums[k] + v for k, v in chunk_sums.items()}
    targets = {m: stats_kernel.QuantileTargets(ops, p) for m, p in partials.items()}
    fine = None
    for start in starts:
        metrics, _ = update_terms(ops, *piece(start, min(chunk, n - start)), wanted=wanted)
        counts = {m: stats_kernel.fine_counts(ops, metrics[m], targets[m]) for m in partials}
        fine = counts if fine is None else {m: fine[m] + counts[m] for m in counts}
    stats = {m: stats_kernel.finish(ops, p, targets[m], fine[m]) for m, p in partials.items()}
    hists = {m: p.hist for m, p in partials.items()}
    scalars = layer_scalars(ops, {k: ops.reshape(v, (1,)) for k, v in sums.items()}, float(n), wanted)
    return stats, hists, scalars
