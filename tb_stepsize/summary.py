"""Writes logged steps as TensorBoard events, following `metadata`.

This is the host half of the write side: it receives the small per-layer
arrays the device computed and appends one `Event` per logged step to an
event file (`records`: no TensorFlow, a native CRC32C).  Every backend's
monitor writes through it, so every run has the same format.
"""

import functools
import itertools
import os
import socket
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.scalar import metadata as scalar_metadata

from tb_stepsize import metadata, records

_DTYPES = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
}
_NONFINITE = metadata.ELEMENT_STATS.index("nonfinite")
_file_ids = itertools.count()


@functools.lru_cache(maxsize=256)
def _shape(dims):
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


def tensor_proto(array):
    """A TensorProto of a float32/int32/uint8 array (its raw little-endian bytes)."""
    array = np.ascontiguousarray(array)
    return tensor_pb2.TensorProto(
        dtype=_DTYPES[array.dtype],
        tensor_shape=_shape(array.shape),
        tensor_content=array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(),
    )


def histogram_triples(counts):
    """int32 `[n, 3]` (row, bin, count) of the non-empty zero and finite bins of `[L, HIST_BINS]` counts."""
    counts = np.asarray(counts)[:, : metadata.HIST_FINITE_BINS + 1]
    rows, bins = np.nonzero(counts)
    return np.stack([rows, bins, counts[rows, bins]], axis=1).astype(np.int32)


class EventFile:
    """An event file in `log_dir`, named and started the way TensorBoard's writers do."""

    def __init__(self, log_dir):
        os.makedirs(log_dir, exist_ok=True)
        # Zero-padded counter: TensorBoard reads a directory's files in name order.
        name = "events.out.tfevents.%010d.%s.%d.%06d.stepsize" % (
            time.time(),
            socket.gethostname(),
            os.getpid(),
            next(_file_ids),
        )
        self.path = os.path.join(log_dir, name)
        self._records = records.RecordFile(self.path)
        self.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def add(self, event):
        self._records.write(event.SerializeToString())

    def flush(self):
        """Flush to the OS; raises the I/O error, or if the file was removed (log_dir deleted)."""
        self._records.flush()

    def close(self):
        self._records.close()


class StepWriter:
    """Writes one run's step-size summaries into `log_dir`.

    `layers` is the list of `{"path", "shape", "dtype"}` dicts in model
    order; `metrics` the metric names this run records (always `step`).
    """

    def __init__(self, log_dir, layers, metrics, optimizer, histograms=True):
        self._file = EventFile(log_dir)
        self._sizes = np.array([max(1, int(np.prod(l["shape"]))) for l in layers], np.float64)
        self._metrics = metrics
        self._histograms = histograms
        digest = metadata.layer_digest([l["path"] for l in layers])
        self._index = (
            metadata.index_tag(digest),
            metadata.index_content(digest, layers, metrics, optimizer),
        )
        self._stats = {
            m: [(metadata.stats_tag(m, digest, s), metadata.stats_content(digest, m, s)) for s in metadata.stats_for(m)]
            for m in metrics
        }
        self._hists = {
            m: (metadata.histogram_tag(m, digest), metadata.histogram_content(digest, m))
            for m in metrics
            if metadata.METRICS[m].elementwise
        }
        self._described = set()  # tags whose metadata this file already carries
        zeros = np.zeros(len(layers), np.float32)
        self._prefixes = {  # statistics tag -> its serialized value without metadata, up to the tensor's bytes
            tag: summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(zeros))])
            .SerializeToString()[: -zeros.nbytes]
            for tags in self._stats.values()
            for tag, _ in tags
        }

    def _value(self, tag_and_content, array):
        """A serialized one-value `Summary`; metadata goes into the first event of each tag only.

        Serialized `Summary` messages concatenate into one (repeated fields
        append), so an event is the join of its values.  After its first
        event a statistics column (float32 `[L]`) is a fixed prefix plus its
        raw bytes: building a proto per column per step was most of the
        host's time for a logged step.
        """
        tag, content = tag_and_content
        if tag in self._described and tag in self._prefixes:
            return self._prefixes[tag] + np.asarray(array, "<f4").tobytes()
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(array))
        if tag not in self._described:
            value.metadata.CopyFrom(metadata.create_summary_metadata(content))
            self._described.add(tag)
        return summary_pb2.Summary(value=[value]).SerializeToString()

    def element_stats(self, device_stats, hist):
        """Full `[L, len(ELEMENT_STATS)]` stats from the device's columns and counts.

        Rows of variables the update did not touch stay all NaN.
        """
        zero_fraction = hist[:, 0] / self._sizes
        nonfinite = hist[:, metadata.HIST_FINITE_BINS + 1 :].sum(axis=1)
        missing = np.isnan(device_stats[:, 0]) & (hist.sum(axis=1) == 0)
        extra = np.stack([zero_fraction, nonfinite], axis=1)
        extra[missing] = np.nan
        return np.concatenate([device_stats, extra], axis=1).astype(np.float32)

    def _scalar(self, tag, value):
        """A serialized one-value `Summary` of an ordinary TensorBoard scalar: a float32 `[]`
        in `float_val`, as `tf.summary.scalar` writes it (the Rust data server did not read
        such a scalar from `tensor_content`)."""
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=_shape(()), float_val=[float(value)])
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        if tag not in self._described:
            value.metadata.CopyFrom(scalar_metadata.create_summary_metadata(display_name=tag, description=""))
            self._described.add(tag)
        return summary_pb2.Summary(value=[value]).SerializeToString()

    def write(self, step, stats, hists, wall_time=None, scalars=None):
        """Write one logged step.

        `stats[m]` is `[L, S_m]` float32 (for elementwise metrics the full
        ELEMENT_STATS columns); `hists[m]` is `[L, HIST_BINS]` counts.  A
        variable whose `step` row has a NaN `nonfinite` count was not
        updated at this step (see `element_stats`).  `scalars` maps tags
        (`metadata.LOSS_TAG`, `metadata.LEARNING_RATE_TAG`) to plain scalars
        written in the same event.
        """
        updated = ~np.isnan(np.asarray(stats["step"])[:, _NONFINITE])
        values = [self._value(self._index, updated.astype(np.uint8))]
        for m in self._metrics:
            columns = np.asarray(stats[m], np.float32).T  # rows: one statistic each
            for s, tag in enumerate(self._stats[m]):
                values.append(self._value(tag, columns[s]))
            if self._histograms and m in hists and m in self._hists:
                values.append(self._value(self._hists[m], histogram_triples(hists[m])))
        values += [self._scalar(tag, value) for tag, value in (scalars or {}).items()]
        event = event_pb2.Event(wall_time=time.time() if wall_time is None else wall_time, step=int(step))
        event.summary.MergeFromString(b"".join(values))
        self._file.add(event)

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()
