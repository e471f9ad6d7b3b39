"""`StepSizeCallback`: the monitor, wired into `model.fit`, on any Keras backend.

The monitor is the one `backends.monitor_class` names for the running
backend (TensorFlow, JAX, torch), imported when the callback first attaches.
"""

import keras

from tb_stepsize import backends


class StepSizeCallback(keras.callbacks.Callback):
    """Logs per-layer step sizes of every `every_n_steps`-th optimizer update.

    `callbacks=[StepSizeCallback("logs/run1")]` in `model.fit`, on the
    TensorFlow, JAX or torch backend.  Keyword arguments are those of
    `StepSizeMonitor`.  The train function is
    retraced once, at the start of the first `fit` (so the hooks are compiled
    in); at the end of `fit` the monitor pauses (a later `fit` without the
    callback records nothing), and a later `fit` with the same callback
    resumes without retracing.

    A subclassed model that is not built before `fit` creates its variables
    in the first train step; recording then starts after that first
    execution.  Build the model first (`model.build(shape)` or call it on a
    batch) to record from step 1.

    At each logged step the callback also writes the loss Keras reports in
    `logs["loss"]` as the scalar `stepsize/loss` -- in Keras 3 that is the
    running mean of the epoch so far, not the batch's own loss -- beside
    the learning rate the update used (`stepsize/learning_rate`, read on
    the device).  With `steps_per_execution > 1` Keras reports only the
    last step of each execution, so the loss is written at the logged
    steps among those.

    Findings (`monitor_kwargs` `on_finding`, `stop_on`: see
    `StepSizeMonitor`): `logs["stepsize_findings"]` is the number of
    warnings and errors found so far, at every batch end and epoch end
    (the progress bar and later callbacks see it); a finding of a kind in
    `stop_on` sets `model.stop_training`, like `TerminateOnNaN`.
    """

    def __init__(self, log_dir, every_n_steps=1, **monitor_kwargs):
        super().__init__()
        self.log_dir = log_dir
        self.every_n_steps = every_n_steps
        self._monitor_kwargs = monitor_kwargs
        self.monitor = None
        self._hooked_function = None
        self._epoch_step = -1

    def on_train_begin(self, logs=None):
        monitor = self.monitor
        if (
            monitor is not None
            and monitor.attached_to(self.model.optimizer)
            and self.model.train_function is self._hooked_function
        ):
            monitor.resume()  # a later fit with the same compiled step: no retrace
            return
        if monitor is not None:
            monitor.close()
        self.monitor = None
        if self.model.built:
            self._attach()
        # else: a subclassed model builds its variables in the first train
        # step; the monitor attaches after it (see on_train_batch_end).

    def _attach(self):
        model = self.model
        self._monitor_kwargs.setdefault("steps_per_call", int(getattr(model, "steps_per_execution", 1) or 1))
        self.monitor = backends.monitor_class()(
            self.log_dir,
            model.optimizer,
            model.trainable_variables,
            every_n_steps=self.every_n_steps,
            **self._monitor_kwargs,
        )
        if self.monitor.enabled:
            model.make_train_function(force=True)
            self._hooked_function = model.train_function

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_step = -1

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls this once per execution with the epoch's last step index.
        if self.monitor is None:
            self._attach()
        else:
            self.monitor.after_steps(batch - self._epoch_step, loss=(logs or {}).get("loss"))
        self._epoch_step = batch
        self._report(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is not None:
            self.monitor.flush()
        self._report(logs)

    def _report(self, logs):
        """Findings so far into `logs`; stop training on a `stop_on` finding."""
        if self.monitor is None:
            return
        if logs is not None:
            logs["stepsize_findings"] = sum(f.severity in ("error", "warning") for f in self.monitor.findings)
        if self.monitor.stop_requested:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.monitor is not None:
            self.monitor.pause()

    def close(self):
        """Stop recording for good and close the event file (also done at exit)."""
        if self.monitor is not None:
            self.monitor.close()
