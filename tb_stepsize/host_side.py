"""The host side of a monitor: each pull of the device ring buffer becomes events and findings.

`StepSizeMonitor` decides *when* to pull (`after_steps`); `HostSide` does
the pull -- one host/device sync for every logged update in the buffer --
and turns each logged update into one event (`summary.StepWriter`): its
statistics, its histograms, the learning rate the update used (the device
stored it in the same slot, so it costs no sync of its own) and the loss the
caller reported for that step (`step_output`).  Each written step also goes to the
training-time findings (`live_findings`), which the monitor checks after
the pull.
"""

import warnings

import tensorflow as tf

from tb_stepsize.step_output import StepOutput


class HostSide:
    """Pulls `reducer`'s ring buffer (`capacity` slots) into `writer` and `live`."""

    def __init__(self, reducer, writer, live, metrics, capacity):
        self._reducer = reducer
        self._output = StepOutput(writer, live, metrics)
        self.live = live
        self._capacity = capacity
        self._seen = 0  # logged updates read so far (the device's count)
        self._losses = {}  # logged step -> loss the caller reported, until written

    def note_loss(self, step, loss):
        """Write `loss` with logged step `step` (when it is pulled)."""
        self._losses[step] = loss

    def pull(self):
        """Read the buffer (one sync) and write what is new; returns how many logged steps it wrote."""
        count, steps, rates, stats, hists = tf.nest.map_structure(lambda x: x.numpy(), self._reducer.read())
        count = int(count)
        if count <= self._seen:
            return 0
        return self._write(count, steps, rates, stats, hists)

    def _write(self, count, steps, rates, stats, hists):
        new = count - self._seen
        if new > self._capacity:
            warnings.warn(
                f"tb_stepsize: {new - self._capacity} logged updates were overwritten "
                "before they were read; call after_steps() more often or raise max_pending.",
                stacklevel=4,
            )
        slots = sorted((i % self._capacity for i in range(max(self._seen, count - self._capacity), count)), key=lambda s: steps[s])
        for slot in slots:
            step = int(steps[slot])
            self._output.write(
                step,
                {m: column[slot] for m, column in stats.items()},
                {m: h[slot] for m, h in hists.items()},
                learning_rate=rates[slot],
                loss=self._losses.pop(step, None),
            )
        last = int(steps[slots[-1]])
        self._losses = {t: v for t, v in self._losses.items() if t > last}  # updates that were never logged (skipped)
        self._seen = count
        return len(slots)
