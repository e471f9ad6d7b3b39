"""The models, data and `fit` wrapper the callback tests share on every backend
(`test_callback` on TensorFlow, `backend_cases` on each).  Keras and numpy only."""

import keras
import numpy as np

import tb_stepsize

X = np.random.default_rng(0).standard_normal((96, 8)).astype("float32")
Y = np.random.default_rng(1).standard_normal((96, 2)).astype("float32")


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def sequential():
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh", name="hidden"), keras.layers.Dense(2, name="out")]
    )


def functional():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    h = keras.layers.LayerNormalization(name="norm")(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(h))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


class WeightRecorder(keras.callbacks.Callback):
    """Weights after every optimizer step (steps_per_execution=1)."""

    def on_train_begin(self, logs=None):
        self.weights = [[to_numpy(v).copy() for v in self.model.trainable_variables]]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([to_numpy(v).copy() for v in self.model.trainable_variables])


def train(model, log_dir, optimizer=None, epochs=2, callbacks=(), every_n_steps=1, cb_kwargs=None, **compile_kwargs):
    """Fit `model` (or `model()` when given a builder, built after seeding)."""
    keras.utils.set_random_seed(3)
    if callable(model) and not isinstance(model, keras.Model):
        model = model()
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), loss="mse", **compile_kwargs)
    cbs = list(callbacks)
    if log_dir is not None:
        cbs.append(tb_stepsize.StepSizeCallback(str(log_dir), every_n_steps=every_n_steps, **(cb_kwargs or {})))
    model.fit(X, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=cbs)
    return model
