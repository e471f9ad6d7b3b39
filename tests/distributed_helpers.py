"""The training runs the distributed tests compare, one per process.

    python distributed_helpers.py WHERE LOG_DIR [KEY=VALUE ...]

WHERE: `single`, `mirrored` (MirroredStrategy on 2 logical CPUs) and
`central` (CentralStorageStrategy, unsupported) train with `fit` and
StepSizeCallback; `loop` and `worker` (MultiWorkerMirroredStrategy from
TF_CONFIG) train with a custom loop and StepSizeMonitor, because Keras 3's
`fit` does not run under MultiWorkerMirroredStrategy
(keras-team/keras#20585).  Prints what the monitor logged, the optimizer's
updates, a hash of the trained weights and tb_stepsize's warnings.

Weights are float64: a strategy sums the replicas' gradients in another
order than one device does, and in float64 that difference stays far below
the float32 rounding of what tb_stepsize records, so a replicated run must
record exactly what the single-device run records.
"""

import contextlib
import hashlib
import sys
import warnings

import numpy as np

X = np.random.default_rng(0).standard_normal((96, 8))
Y = np.random.default_rng(1).standard_normal((96, 2))
BATCH = 16  # global: 6 updates per epoch
OPTIMIZERS = {
    "adamw": lambda keras: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
    "nadam": lambda keras: keras.optimizers.Nadam(1e-2),
}


def logical_cpus(n):
    """Split the CPU into `n` logical devices (before TensorFlow initializes)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def model_in(strategy, optimizer, chunked=False):
    """The test model, compiled in `strategy`'s scope, from a fixed seed.

    `chunked` sends every variable through the large-variable reduction, in
    chunks with a tail.
    """
    import keras

    from tb_stepsize import reduction

    if chunked:
        reduction.SMALL_MAX, reduction.CHUNK = 16, 100
    keras.config.set_floatx("float64")
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="tanh", name="hidden"), keras.layers.Dense(2, name="out")]
        )
        model.compile(optimizer=OPTIMIZERS[optimizer](keras), loss="mse")
    return model


def fit(log_dir, strategy, optimizer="adamw", every_n_steps=1, fit_in_scope=0, chunked=0, monitored=1):
    """2 epochs of `fit` with StepSizeCallback (unless not `monitored`).

    `fit_in_scope` runs `fit`, so creates the monitor, in the strategy's scope.
    """
    import tb_stepsize

    model = model_in(strategy, optimizer, chunked)
    callbacks = [tb_stepsize.StepSizeCallback(log_dir, every_n_steps=every_n_steps)] if monitored else []
    with strategy.scope() if fit_in_scope else contextlib.nullcontext():
        model.fit(X, Y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    for callback in callbacks:
        callback.close()
    return callbacks[0].monitor if callbacks else None, model


def custom_loop(log_dir, strategy, optimizer="adamw", every_n_steps=1):
    """One epoch of a custom loop (`strategy.run`) with StepSizeMonitor."""
    import tensorflow as tf

    import tb_stepsize

    model = model_in(strategy, optimizer)
    variables = model.trainable_variables
    with strategy.scope():
        model.optimizer.build(variables)
    monitor = tb_stepsize.StepSizeMonitor(log_dir, model.optimizer, variables, every_n_steps=every_n_steps, on_error="raise")

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            per_example = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=BATCH)
        model.optimizer.apply(tape.gradient(loss, variables), variables)

    @tf.function
    def train_step(x, y):
        strategy.run(replica_step, args=(x, y))

    data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH)
    for x, y in strategy.experimental_distribute_dataset(data):
        train_step(x, y)
        monitor.after_steps()
    monitor.close()
    return monitor, model


def main(where, log_dir, *options):
    kwargs = {k: (v if k == "optimizer" else int(v)) for k, v in (o.split("=") for o in options)}
    if where in ("mirrored", "central"):
        logical_cpus(2)
    import tensorflow as tf

    strategy = {
        "mirrored": lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
        "central": lambda: tf.distribute.experimental.CentralStorageStrategy(["/cpu:0", "/cpu:1"]),
        "worker": tf.distribute.MultiWorkerMirroredStrategy,
    }.get(where, tf.distribute.get_strategy)()
    train = custom_loop if where in ("loop", "worker") else fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor, model = train(log_dir, strategy, **kwargs)
    weights = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.trainable_variables)).hexdigest()
    logged = monitor.logged_steps if monitor else 0
    print("logged", logged, "updates", int(model.optimizer.iterations.numpy()), "weights", weights)
    from tb_stepsize.live_findings import FindingWarning

    # The monitor's own warnings; a finding's (its own category) depends on the model, not the strategy.
    failures = [w for w in caught if "tb_stepsize" in str(w.message) and w.category is not FindingWarning]
    print("warnings", [str(w.message) for w in failures], flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
