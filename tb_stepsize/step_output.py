"""One logged update, as the host receives it, into an event and the live findings.

Every monitor ends the same way: the device's small per-layer arrays of one
logged update (numpy by now) become one event (`summary.StepWriter`) with
the learning rate and the reported loss beside them, and a row of the
training-time findings (`live_findings`).  No framework import.
"""

from tb_stepsize import metadata


class StepOutput:
    """Writes logged updates into `writer` and feeds them to `live` (or None)."""

    def __init__(self, writer, live, metrics):
        self._writer = writer
        self.live = live
        self._metrics = metrics

    def write(self, step, stats, hists, learning_rate=None, loss=None):
        """Write logged update `step`.

        `stats[m]` is `[L, len(stats_kernel.DEVICE_STATS)]` for an elementwise
        metric (with `hists[m]` its `[L, HIST_BINS]` counts) and `[L, 1]` for a
        per-layer one; rows of variables the update did not touch are NaN.
        """
        out = {}
        for m in self._metrics:
            if m in hists:
                out[m] = self._writer.element_stats(stats[m], hists[m])
            else:
                out[m] = stats[m]
        scalars = {}
        if learning_rate is not None:
            scalars[metadata.LEARNING_RATE_TAG] = float(learning_rate)
        if loss is not None:
            scalars[metadata.LOSS_TAG] = float(loss)
        self._writer.write(step, out, hists, scalars=scalars)
        if self.live is not None:
            self.live.add(step, out)
