"""The loss and the learning rate beside the steps: `stepsize/loss` and
`stepsize/learning_rate`, written at the logged steps by the callback and by
a custom loop, read back through TensorBoard's data provider."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import plugin_helpers  # noqa: E402
import tb_stepsize  # noqa: E402
from tb_stepsize import metadata  # noqa: E402

TAGS = [metadata.LOSS_TAG, metadata.LEARNING_RATE_TAG]
X = np.random.default_rng(0).standard_normal((80, 4)).astype("float32")
Y = np.random.default_rng(1).standard_normal((80, 1)).astype("float32")


def model_and_schedule():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=1, decay_rate=0.9)
    return model, schedule


class BatchLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


def test_callback_writes_the_loss_keras_reports_and_the_learning_rate_used(tmp_path):
    model, schedule = model_and_schedule()
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    logs = BatchLogs()
    callback = tb_stepsize.StepSizeCallback(str(tmp_path / "run"), every_n_steps=3)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[callback, logs])
    callback.close()
    read = plugin_helpers.read_scalars(str(tmp_path), "run", TAGS)
    logged = list(range(1, 21, 3))  # 20 updates, every 3rd from the first
    # Update t uses the schedule at t - 1 (the iterations before it).
    assert read[metadata.LEARNING_RATE_TAG] == [(t, pytest.approx(float(schedule(t - 1)), rel=1e-6)) for t in logged]
    assert read[metadata.LOSS_TAG] == [(t, pytest.approx(logs.losses[t - 1], rel=1e-6)) for t in logged]


def test_custom_loop_passes_its_loss_tensor(tmp_path):
    model, schedule = model_and_schedule()
    optimizer = keras.optimizers.SGD(schedule)
    optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    losses = []
    with tb_stepsize.StepSizeMonitor(str(tmp_path / "run"), optimizer, every_n_steps=2) as monitor:
        for i in range(0, 80, 8):
            loss = train_step(X[i : i + 8], Y[i : i + 8])
            losses.append(float(loss))
            monitor.after_steps(loss=loss)
    read = plugin_helpers.read_scalars(str(tmp_path), "run", TAGS)
    assert read[metadata.LOSS_TAG] == [(t, pytest.approx(losses[t - 1])) for t in range(1, 11, 2)]
    assert [s for s, _ in read[metadata.LEARNING_RATE_TAG]] == list(range(1, 11, 2))


def test_without_a_loss_only_the_learning_rate(tmp_path):
    model, _ = model_and_schedule()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    step = tf.function(lambda: optimizer.apply([tf.ones_like(v) for v in model.trainable_variables], model.trainable_variables))
    with tb_stepsize.StepSizeMonitor(str(tmp_path / "run"), optimizer) as monitor:
        for _ in range(3):
            step()
            monitor.after_steps()
    read = plugin_helpers.read_scalars(str(tmp_path), "run", TAGS)
    assert read[metadata.LOSS_TAG] == []
    assert read[metadata.LEARNING_RATE_TAG] == [(t, pytest.approx(1e-3)) for t in (1, 2, 3)]
    assert tb_stepsize.load(str(tmp_path / "run")).steps.tolist() == [1, 2, 3]  # the step-size data read as before
