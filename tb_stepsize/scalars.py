"""A run's ordinary TensorBoard scalars (what the Scalars tab shows: the
loss, the learning rate...), read through the data provider for the thin
strip the dashboard draws above the heatmap on the same step axis.  A
step-size jump means little without the loss beside it.

Only the data provider is used (any loader, no TensorFlow): `list_scalars`
and `read_scalars` of the `scalars` plugin.  TensorBoard keeps a sample of
each scalar series (1,000 points by default in its Python loader); this
reads what it kept.
"""

import numpy as np
from tensorboard.data import provider as tb_provider

PLUGIN_NAME = "scalars"
MAX_POINTS = 10_000  # per tag: more than TensorBoard keeps by default
MAX_TAGS = 50  # a run with more shows the first ones (in tag order)


def read(provider, ctx, experiment_id, run):
    """`{tag: (steps int64 [N], values float64 [N])}` of `run`'s scalar tags
    (sorted by tag, steps increasing); `{}` if it has none."""
    listed = provider.list_scalars(
        ctx, experiment_id=experiment_id, plugin_name=PLUGIN_NAME, run_tag_filter=tb_provider.RunTagFilter(runs=[run])
    )
    tags = sorted(listed.get(run, {}))[:MAX_TAGS]
    if not tags:
        return {}
    data = provider.read_scalars(
        ctx,
        experiment_id=experiment_id,
        plugin_name=PLUGIN_NAME,
        downsample=MAX_POINTS,
        run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=tags),
    ).get(run, {})
    out = {}
    for tag in tags:
        points = sorted(data.get(tag, []), key=lambda p: p.step)
        out[tag] = (np.array([p.step for p in points], np.int64), np.array([p.value for p in points], np.float64))
    return out
