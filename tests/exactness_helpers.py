"""What the exactness tests share on every backend: the optimizers, the cases,
the state a test snapshots around each update and the comparison of a
recorded run against `reference`'s numpy recomputation.

Imports Keras and numpy (and a backend's framework only inside the custom
loop written for it): `test_exactness` (TensorFlow) and `backend_cases`
(TensorFlow, JAX, torch) use it.
"""

import keras
import numpy as np

import reference
import tb_stepsize

BACKEND = keras.backend.backend()

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adam_schedule": lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-2, 1, 0.5)),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
    "amsgrad": lambda: keras.optimizers.Adam(1e-2, amsgrad=True),
    "nadam": lambda: keras.optimizers.Nadam(1e-2),
    "adamax": lambda: keras.optimizers.Adamax(1e-2),
    "sgd_momentum": lambda: keras.optimizers.SGD(1e-2, momentum=0.9),
    "rmsprop": lambda: keras.optimizers.RMSprop(1e-3),
}
ADAM_FAMILY = ("Adam", "AdamW", "Nadam", "Adamax")
STEPS = 3
# XLA on CPU (JAX) evaluates float32 formulas a rounding or two away from
# numpy's order of operations (`reference.xla_slack`): there the elementwise
# rule metrics are checked within that bound of the reference, per element.
XLA = BACKEND == "jax"


def numpy_f32(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def model_for(dtype):
    """The two-layer model the exactness cases train (`bfloat16`: weights stored in bfloat16)."""
    layer_dtype = "bfloat16" if dtype == "bfloat16" else None
    return keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu", dtype=layer_dtype),
            keras.layers.Dense(4, dtype=layer_dtype),
        ]
    )


def optimizer_for(name, dtype):
    optimizer = OPTIMIZERS[name]()
    if dtype == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def slots(inner, var):
    """The optimizer's slots for `var` after an update, as float32 numpy (Keras' private names)."""
    i = inner._get_variable_index(var)
    out = {}
    for name in ("_momentums", "_velocities", "_velocity_hats", "_m", "_u"):
        found = getattr(inner, name, None)
        if found:
            out[name] = numpy_f32(found[i])
    if hasattr(inner, "_u_product"):
        out["u_product"] = float(numpy_f32(inner._u_product))
    return out


def state_before(inner):
    """`(t, lr)` of the update about to run."""
    t = int(keras.ops.convert_to_numpy(inner.iterations)) + 1
    if hasattr(inner, "_get_current_learning_rate"):
        lr = float(numpy_f32(inner._get_current_learning_rate()))
    else:
        lr = float(numpy_f32(inner.learning_rate))
    return t, lr


def record(inner, variables, t, lr, before, grads, scale):
    """One update's snapshot: `grads` as the step returned them (scaled by `scale`)."""
    return {
        "t": t,
        "lr": lr,
        "before": before,
        "after": weights_of(variables),
        "grads": [
            (numpy_f32(g) / np.float32(scale)).astype(np.float32).astype(v.dtype if v.dtype != "bfloat16" else np.float32)
            for g, v in zip(grads, variables)
        ],
        "slots": [slots(inner, v) for v in variables],
        "updated": int(keras.ops.convert_to_numpy(inner.iterations)) == t,
    }


def weights_of(variables):
    return [numpy_f32(v) if v.dtype == "bfloat16" else np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def expected(inner, config, record, i, var):
    """Every metric of variable `i` at `record`'s update, recomputed with `reference`."""
    old = record["before"][i].astype(np.float32)
    delta = old - record["after"][i].astype(np.float32)
    out = {"step": np.abs(delta), "update_ratio": reference.rms(delta) / reference.rms(old) if reference.rms(old) > 0 else np.nan}
    s = record["slots"][i]
    g = record["grads"][i].astype(np.float32)
    if var.dtype == "bfloat16":
        import ml_dtypes

        g = g.astype(ml_dtypes.bfloat16).astype(np.float32)
    t, lr = record["t"], record["lr"]
    kind = keras_name(inner)
    if kind in ("Adam", "AdamW"):
        v = s["_velocity_hats"] if config.get("amsgrad") else s["_velocities"]
        eff, upd, norm = reference.adam_parts(config, t, lr, s["_momentums"], v, g)
    elif kind == "Nadam":
        eff, upd, norm = reference.nadam_parts(config, t, lr, s["_momentums"], s["_velocities"], g, s["u_product"])
    elif kind == "Adamax":
        eff, upd, norm = reference.adamax_parts(config, t, lr, s["_m"], s["_u"], g)
    else:
        return out
    # The update's terms: m_hat's two (each at most 10x |m| or |g| in these cases) for Nadam.
    terms = [eff * (np.abs(s["_momentums"]) + np.abs(g)) * 10] if kind == "Nadam" else [upd]
    if config.get("weight_decay"):
        # The documented definition: decay = wd * lr, one float32 product, times w_old.
        decay = old * (np.float32(config["weight_decay"]) * np.float32(lr))
        upd = upd + decay
        terms.append(decay)
    intended = np.abs(upd)
    if XLA:
        out["slack"] = {"intended_step": reference.xla_slack(*terms), "effective_lr": reference.xla_slack(eff)}
    out.update(
        effective_lr=eff,
        intended_step=intended,
        lost_fraction=np.count_nonzero((intended != 0) & (out["step"] == 0)) / intended.size,
        second_moment_rms=reference.rms(norm),
    )
    return out


def custom_loop_step(model, optimizer, variables):
    """`step(x, y) -> grads`: one update as a custom loop on this backend makes it
    (TensorFlow: `optimizer.apply` in a `tf.function`; JAX: `stateless_apply`
    in a jitted step; torch: eager `optimizer.apply`)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(model(x), tf.float32) - y))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, variables)
            optimizer.apply(grads, variables)
            return grads

        return step
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def pure(trainable, optimizer_values, x, y):
            def loss_fn(trainable):
                y_pred, _ = model.stateless_call(trainable, non_trainable, x)
                loss = jnp.mean(jnp.square(y_pred.astype("float32") - y))
                with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
                    return optimizer.scale_loss(loss)

            grads = jax.grad(loss_fn)(trainable)
            trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, trainable)
            return trainable, optimizer_values, grads

        def step(x, y):
            trainable, optimizer_values, grads = pure([v.value for v in variables], [v.value for v in optimizer.variables], x, y)
            for v, value in zip(variables, trainable):
                v.assign(value)
            for v, value in zip(optimizer.variables, optimizer_values):
                v.assign(value)
            return grads

        return step
    import torch

    def step(x, y):
        loss = keras.ops.mean(keras.ops.square(keras.ops.cast(model(x), "float32") - keras.ops.convert_to_tensor(y)))
        scaled = optimizer.scale_loss(loss)
        model.zero_grad()
        scaled.backward()
        grads = [v.value.grad for v in variables]
        with torch.no_grad():
            optimizer.apply(grads, variables)
        return [g.detach().clone() for g in grads]

    return step


def train_custom(log_dir, optimizer_name, dtype):
    """`STEPS` monitored updates of `model_for(dtype)` in this backend's custom loop:
    `(model, inner optimizer, records, its config)`."""
    keras.utils.set_random_seed(1)
    if dtype.startswith("mixed_"):
        keras.mixed_precision.set_global_policy(dtype)
    try:
        model = model_for(dtype)
        optimizer = optimizer_for(optimizer_name, dtype)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        variables = model.trainable_variables
        optimizer.build(variables)
        monitor = tb_stepsize.StepSizeMonitor(str(log_dir), optimizer, variables, on_error="raise")
        step = custom_loop_step(model, optimizer, variables)
        rng = np.random.default_rng(0)
        records = []
        for _ in range(STEPS):
            x = rng.standard_normal((64, 16)).astype("float32")
            y = rng.standard_normal((64, 4)).astype("float32")
            scale = float(numpy_f32(optimizer.dynamic_scale)) if dtype == "mixed_float16" else 1.0
            t, lr = state_before(inner)
            before = weights_of(variables)
            grads = step(x, y)
            monitor.after_steps()
            records.append(record(inner, variables, t, lr, before, grads, scale))
        monitor.close()
        return model, inner, records, inner.get_config()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def keras_name(inner):
    """The Keras class name (on torch Keras swaps in a subclass of the same name)."""
    return type(inner).__name__


def check_run(run, variables, inner, records, config, what, dtype):
    """Assert the recorded `run` equals `reference` on every logged update in `records`."""
    assert run.layers == [v.path for v in variables]
    logged = [r for r in records if r["updated"]]
    assert list(run.steps) == [r["t"] for r in logged]
    assert set(run.metrics) == (
        {"step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"}
        if keras_name(inner) in ADAM_FAMILY
        else {"step", "update_ratio"}
    )
    for col, rec in enumerate(logged):
        for i, var in enumerate(variables):
            want = expected(inner, config, rec, i, var)
            slack = want.pop("slack", {})
            for metric, value in want.items():
                label = f"{what}/{dtype} t={rec['t']} {var.path} {metric}"
                stats = run.stats[metric]
                row = run.values[metric][i, col]
                if stats == ["value"]:
                    rtol = 1e-3 if metric == "second_moment_rms" and dtype != "float32" else 2e-5
                    np.testing.assert_allclose(row[0], value, rtol=rtol, equal_nan=True, err_msg=label)
                else:
                    reference.check_stats(value, row, stats, label, slack=slack.get(metric))
            steps, hists = run.histograms("step", var.path)
            reference.check_histogram(want["step"], hists[list(steps).index(rec["t"])], var.path)
