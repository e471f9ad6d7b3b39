"""Writes logged steps as TensorBoard events, following `metadata`.

This is the host half of the write side: it receives the small per-layer
arrays the device computed and turns them into one `Event` per logged step.
It needs no TensorFlow (TensorBoard's own event writer does the I/O), so the
cost on the host is building a few protos per layer.
"""

import errno
import os
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tb_stepsize import metadata


_DTYPES = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE}


def tensor_proto(array):
    """A TensorProto of a float32/float64 array (its raw little-endian bytes)."""
    array = np.ascontiguousarray(array)
    return tensor_pb2.TensorProto(
        dtype=_DTYPES[array.dtype],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
        ),
        tensor_content=array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(),
    )


def histogram_rows(counts):
    """`[k, 3]` (left, right, count) rows of one layer's finite, non-empty span.

    `counts` has `metadata.HIST_BINS` entries; the first row is the zero bin.
    """
    finite = counts[1 : metadata.HIST_FINITE_BINS + 1]
    nonzero = np.flatnonzero(finite)
    rows = [np.array([[0.0, 0.0, counts[0]]])]
    if nonzero.size:
        first, last = nonzero[0] + 1, nonzero[-1] + 1
        left, right = metadata.histogram_edges(first, last)
        rows.append(np.stack([left, right, counts[first : last + 1]], axis=1))
    return np.concatenate(rows).astype(np.float64)


class _GuardedFile:
    """The event file below TensorBoard's writer thread, keeping the first I/O error.

    TensorBoard's `EventFileWriter` writes from a thread; an error there (a
    full disk) would kill the thread with a printed traceback.  This wrapper
    keeps the error instead (and writes nothing after it) so that
    `StepWriter` raises it, once, in the caller's thread.
    """

    def __init__(self, file):
        self._file = file
        self.error = None

    def _guard(self, method, *args):
        if self.error is None:
            try:
                method(*args)
            except Exception as e:  # noqa: BLE001 -- re-raised by StepWriter
                self.error = e

    def write(self, data):
        self._guard(self._file.write, data)

    def flush(self):
        self._guard(self._file.flush)

    def close(self):
        try:
            self._file.close()
        except Exception as e:  # noqa: BLE001
            self.error = self.error or e

    @property
    def closed(self):
        return self._file.closed


class StepWriter:
    """Writes one run's step-size summaries into `log_dir`.

    `layers` is the list of `{"path", "shape", "dtype"}` dicts in model
    order; `metrics` the metric names this run records.
    """

    def __init__(self, log_dir, layers, metrics, optimizer, histograms=True, flush_secs=30):
        self._writer = EventFileWriter(log_dir, max_queue_size=100, flush_secs=flush_secs)
        self._layers = layers
        self._sizes = np.array([max(1, int(np.prod(l["shape"]))) for l in layers], np.float64)
        self._metrics = metrics
        self._histograms = histograms
        digest = metadata.layer_digest([l["path"] for l in layers])
        self._stats_tags = {m: metadata.stats_tag(m, digest) for m in metrics}
        self._optimizer = optimizer
        self._hist_tags = {
            m: [metadata.histogram_tag(m, digest, row) for row in range(len(layers))]
            for m in metrics
            if metadata.METRICS[m][0]
        }
        self._described = set()  # tags whose metadata this file already carries
        self._path = getattr(self._writer, "_file_name", None)
        # Route I/O errors of the writer thread to our caller (see _GuardedFile);
        # without these TensorBoard internals, errors surface as TensorBoard raises them.
        records = getattr(getattr(self._writer, "_async_writer", None), "_writer", None)
        self._file = None
        if records is not None and hasattr(records, "_writer"):
            self._file = records._writer = _GuardedFile(records._writer)

    def _check(self):
        if self._file is not None and self._file.error is not None:
            raise self._file.error

    def _value(self, tag, array, make_metadata):
        """A summary value; metadata goes into the first event of each tag only."""
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(array))
        if tag not in self._described:
            value.metadata.CopyFrom(make_metadata())
            self._described.add(tag)
        return value

    def element_stats(self, device_stats, hist):
        """Full `[L, len(ELEMENT_STATS)]` stats from the device's columns and counts."""
        zero_fraction = hist[:, 0] / self._sizes
        nonfinite = hist[:, metadata.HIST_FINITE_BINS + 1 :].sum(axis=1)
        missing = np.isnan(device_stats[:, 0]) & (hist.sum(axis=1) == 0)
        extra = np.stack([zero_fraction, nonfinite], axis=1)
        extra[missing] = np.nan
        return np.concatenate([device_stats, extra], axis=1).astype(np.float32)

    def write(self, step, stats, hists, wall_time=None):
        """Write one logged step.

        `stats[m]` is `[L, S_m]` float32 (for elementwise metrics the full
        ELEMENT_STATS columns); `hists[m]` is `[L, HIST_BINS]` counts.
        """
        values = []
        for m in self._metrics:
            values.append(
                self._value(
                    self._stats_tags[m],
                    np.asarray(stats[m], np.float32),
                    lambda: metadata.create_summary_metadata(
                        metadata.stats_content(m, self._layers, self._optimizer)
                    ),
                )
            )
            if self._histograms and m in hists:
                for row, tag in enumerate(self._hist_tags[m]):
                    counts = hists[m][row]
                    if counts.any():
                        values.append(
                            self._value(
                                tag,
                                histogram_rows(counts),
                                lambda: metadata.create_summary_metadata(
                                    metadata.histogram_content(m, self._layers[row]["path"], row)
                                ),
                            )
                        )
        self._check()
        event = event_pb2.Event(
            wall_time=time.time() if wall_time is None else wall_time,
            step=int(step),
            summary=summary_pb2.Summary(value=values),
        )
        self._writer.add_event(event)

    def flush(self):
        """Flush to disk; raises the writer's first I/O error, or if the file was removed."""
        self._writer.flush()
        self._check()
        if self._path is not None and not os.path.exists(self._path):
            raise FileNotFoundError(
                errno.ENOENT, "the event file was removed (log_dir deleted during training?)", self._path
            )

    def close(self):
        self._writer.close()
        self._check()
