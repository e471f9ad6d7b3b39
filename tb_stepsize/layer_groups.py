"""The heatmap's rows of a big model: variables grouped by module, filtered by kind (pure Python).

Variable paths are hierarchical (`model/block3/attn/query/kernel`), so a
model of hundreds of variables reads best as its modules.  `rows` turns a
run's layers into the rows the `heatmap` route serves:

* **depth** `d` (None: no grouping): a path with more than `d` components
  belongs to the group named by its first `d` (`model/block3`, shown as
  `model/block3/*`); a path of `d` components or fewer stays its own row.
  A group of one variable is shown as that variable.  Groups appear in
  model order, where their first member is.
* **expand**: the names of groups whose members are listed too, each right
  after its group row.
* **kind** (None: all): only variables of that kind, decided by the path's
  last component (`variable_kind`), before grouping -- so `block3/*` with
  kind "bias" pools the biases of block 3.

A group row's cell pools its members' cells of that column -- the cells
the ungrouped heatmap shows, already pooled over the column's steps -- by
`pooling.pool_groups`: the rules of
the step axis (min of the members' min, max of their max and non-finite
counts, NaN/Inf never vanish), every other statistic the members' mean
weighted by their element counts (`element_counts`, from the layer shapes;
equal weights if a shape is unknown).
"""

import dataclasses
import math

# Kinds of variable, from the last path component.  Names are Keras 3's
# (`kernel`, `bias`, `gamma`/`beta`, `embeddings`) and the usual others.
KINDS = ("kernel", "bias", "norm", "embedding", "other")
_KERNELS = {"kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "weight", "weights", "w"}
_BIASES = {"bias", "b"}
_NORMS = {"gamma", "beta", "scale", "offset"}
_EMBEDDINGS = {"embeddings", "embedding", "embedding_table"}
MAX_DEPTH = 32


def variable_kind(path):
    """"kernel", "bias", "norm" (a normalisation's scale or shift: gamma,
    beta, scale, offset), "embedding" or "other", from the last component of
    `path` (a trailing `:0` ignored; `*_kernel`, `*_bias`, `*_embeddings` count too)."""
    last = path.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    if last in _EMBEDDINGS or last.endswith("_embeddings"):
        return "embedding"
    if last in _KERNELS or last.endswith("_kernel"):
        return "kernel"
    if last in _BIASES or last.endswith("_bias"):
        return "bias"
    if last in _NORMS:
        return "norm"
    return "other"


def group_of(path, depth):
    """The group `path` belongs to at `depth` (its first `depth` components), or None."""
    parts = path.split("/")
    return "/".join(parts[:depth]) if depth and len(parts) > depth else None


@dataclasses.dataclass(frozen=True)
class Row:
    """One heatmap row: `label` (a layer path, or `<group>/*`), the layer
    indices it pools (`members`), its `group` name (a group row's own, a
    listed member's group; "" for an ungrouped layer) and `is_group`."""

    label: str
    members: tuple
    group: str
    is_group: bool


def rows(layers, depth=None, expand=(), kind=None):
    """The `Row`s showing `layers` (paths, model order) grouped at `depth`,
    with the groups named in `expand` listed, only variables of `kind`."""
    expand = set(expand)
    kept = [i for i, p in enumerate(layers) if kind is None or variable_kind(p) == kind]
    members, order = {}, []
    for i in kept:
        key = group_of(layers[i], depth) or ("", i)
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].append(i)
    out = []
    for key in order:
        m = members[key]
        if isinstance(key, tuple) or len(m) == 1:
            out.append(Row(layers[m[0]], (m[0],), key if isinstance(key, str) else "", False))
            continue
        out.append(Row(key + "/*", tuple(m), key, True))
        if key in expand:
            out.extend(Row(layers[i], (i,), key, False) for i in m)
    return out


def element_counts(layer_info):
    """Element count of each layer (from its shape), or None if any shape is unknown."""
    counts = []
    for info in layer_info:
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        counts.append(max(1.0, float(math.prod(shape))))
    return counts
