"""A big model's run for the dashboard's zoom / group / sort tests and benches (no training).

Run `RUN`: 600 variables in 12 modules (`model/block00` .. `model/block11`,
each 10 sub-layers x {dense/kernel, dense/bias, norm/gamma, norm/beta,
proj/kernel}) x 100,000 logged steps (`OTHER_RUN`: the same for
2,000 steps), metric `step` with the statistics
`STATS` only (p50 and max: the event files stay ~0.55 GB).  The p50 of
variable i at step s is `base(i) * wave(s)`, max three times it; the
variable `OUTLIER` moves 1000x more than the others, so it sorts first.

Written like bench/bench_longrun.py does it, fast: `VARIANTS` step payloads
are serialized once, each event is their bytes behind its own step and wall
time, through TensorFlow's record writer.
"""

import json
import math
import os
import struct
import time
import urllib.request

import numpy as np

import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_stepsize import metadata
from tb_stepsize.summary import tensor_proto

RUN = "bigmodel"
OTHER_RUN = "bigmodel_short"  # the same model for 2,000 steps, to compare with
OTHER_STEPS = 2000
MODULES = 12
SUBLAYERS = 10
VARS = (("dense/kernel", "kernel"), ("dense/bias", "bias"), ("norm/gamma", "norm"), ("norm/beta", "norm"), ("proj/kernel", "kernel"))
STEPS = 100_000
STATS = ("p50", "max")
MAX_FACTOR = 3.0
VARIANTS = 1000  # wave(s) repeats every VARIANTS steps
OUTLIER_INDEX = 7 * SUBLAYERS * len(VARS) + 3 * len(VARS)  # model/block07/layer3/dense/kernel


def layers():
    out = []
    for m in range(MODULES):
        for j in range(SUBLAYERS):
            for name, kind in VARS:
                shape = [32 + j, 16 + m] if kind == "kernel" else [32 + j]
                out.append({"path": f"model/block{m:02d}/layer{j}/{name}", "shape": shape, "dtype": "float32"})
    return out


LAYERS = layers()
OUTLIER = LAYERS[OUTLIER_INDEX]["path"]


def base():
    """float64 [L]: each variable's p50 scale (the outlier's 1000x)."""
    i = np.arange(len(LAYERS))
    b = 1e-5 * (1.0 + (i % 7)) * (1.0 + 0.1 * (i // (SUBLAYERS * len(VARS))))
    b[OUTLIER_INDEX] *= 1000.0
    return b


def wave(steps):
    """float64: the factor of every variable at `steps` (period VARIANTS)."""
    s = np.asarray(steps) % VARIANTS
    return 1.0 + 0.5 * np.sin(2 * math.pi * s / VARIANTS) + 0.08 * (s % 10)


def p50(steps):
    """float32 [L, len(steps)]: the stored p50 at `steps`."""
    return (base()[:, None] * wave(steps)[None, :]).astype(np.float32)


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _summary(tags, arrays, described):
    values = []
    for (tag, content), array in zip(tags, arrays):
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(array))
        if not described:
            value.metadata.CopyFrom(metadata.create_summary_metadata(content))
        values.append(value)
    return summary_pb2.Summary(value=values).SerializeToString()


def write_run(run_dir, steps=STEPS):
    """Writes the run into `run_dir` (skipped if a complete one is there)."""
    marker = os.path.join(run_dir, "COMPLETE")
    spec = f"{steps} {len(LAYERS)} {STATS} {wave(np.arange(10)).tolist()}\n"  # a new design is written again
    if os.path.exists(marker) and open(marker).read() == spec:
        return run_dir
    os.makedirs(run_dir, exist_ok=True)
    for name in os.listdir(run_dir):
        os.remove(os.path.join(run_dir, name))
    digest = metadata.layer_digest([l["path"] for l in LAYERS])
    index = metadata.index_content(digest, LAYERS, ["step"], "AdamW")
    index["metrics"] = {"step": list(STATS)}
    tags = [(metadata.index_tag(digest), index)] + [
        (metadata.stats_tag("step", digest, s), metadata.stats_content(digest, "step", s)) for s in STATS
    ]
    ones = np.ones(len(LAYERS), np.uint8)
    phases = np.arange(VARIANTS)
    medians = p50(phases)  # [L, VARIANTS]
    payload = [
        [ones, medians[:, k], (medians[:, k].astype(np.float64) * MAX_FACTOR).astype(np.float32)] for k in range(VARIANTS)
    ]
    bodies = [_summary(tags, arrays, True) for arrays in payload]
    out = tf.io.TFRecordWriter(os.path.join(run_dir, "events.out.tfevents.1700000000.bigmodel"))
    out.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
    for step in range(1, steps + 1):
        body = bodies[step % VARIANTS] if step > 1 else _summary(tags, payload[step % VARIANTS], False)
        event = b"\x09" + struct.pack("<d", 1.7e9 + step) + b"\x10" + _varint(step) + b"\x2a" + _varint(len(body)) + body
        out.write(event)
    out.close()
    with open(marker, "w") as f:
        f.write(spec)
    return run_dir


def write_logdir(root, steps=STEPS):
    """`root` holding the run `RUN` (generated once; reused while complete)."""
    write_run(os.path.join(root, RUN), steps)
    return root


def wait_served(url, timeout=180, warm=True):
    """Until the TensorBoard at `url` has loaded every step of both runs (a
    page opened before would draw, and wait for, a part of the run first),
    then (`warm`) has read the columns a page shows first."""
    want = {RUN: STEPS, OTHER_RUN: OTHER_STEPS}
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/data/plugin/stepsize/tags", timeout=60) as r:
                tags = json.loads(r.read())
            if all(tags.get(run, {}).get("num_steps") == n for run, n in want.items()):
                break
        except OSError:
            pass
        time.sleep(1)
    else:
        raise TimeoutError("TensorBoard did not load the big model's runs")
    if not warm:
        return
    # Read the columns the pages show first (each ~0.25 GB through the data
    # server, seconds on a busy machine) before a page waits for them.
    for query in (f"heatmap?run={RUN}&metric=step&stat=p50&max_steps=10", f"heatmap?run={RUN}&metric=step&stat=max&max_steps=10", f"findings?run={RUN}"):
        with urllib.request.urlopen(url + "/data/plugin/stepsize/" + query, timeout=300) as r:
            r.read()
