"""Every recorded number against an independent numpy recomputation.

A custom training loop calls `optimizer.apply`, as users of the monitor API
do; the test snapshots weights, gradients and slots around each update and
recomputes every statistic with `reference`.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import reference  # noqa: E402
import tb_stepsize  # noqa: E402

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
CASES = [(o, "float32") for o in OPTIMIZERS] + [(o, "mixed_float16") for o in OPTIMIZERS if o != "adam_schedule"] + [
    ("adam", "bfloat16"),
    ("sgd_momentum", "bfloat16"),
    ("adamw", "float32-chunked"),
    ("nadam", "float32-chunked"),
]
STEPS = 3


def _slots(inner, var):
    i = inner._get_variable_index(var)
    out = {}
    for name in ("_momentums", "_velocities", "_velocity_hats", "_m", "_u"):
        slots = getattr(inner, name, None)
        if slots:
            out[name] = np.asarray(tf.cast(slots[i], tf.float32))
    if hasattr(inner, "_u_product"):
        out["u_product"] = float(inner._u_product.numpy())
    return out


def _train(tmp_path, optimizer_name, dtype):
    keras.utils.set_random_seed(1)
    if dtype == "mixed_float16":
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer_dtype = "bfloat16" if dtype == "bfloat16" else None
        model = keras.Sequential(
            [
                keras.Input((16,)),
                keras.layers.Dense(32, activation="relu", dtype=layer_dtype),
                keras.layers.Dense(4, dtype=layer_dtype),
            ]
        )
        optimizer = OPTIMIZERS[optimizer_name]()
        if dtype == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        variables = model.trainable_variables
        optimizer.build(variables)
        monitor = tb_stepsize.StepSizeMonitor(str(tmp_path), optimizer, variables, on_error="raise")

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(model(x), tf.float32) - y))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, variables)
            optimizer.apply(grads, variables)
            return grads

        rng = np.random.default_rng(0)
        records = []
        for _ in range(STEPS):
            x = rng.standard_normal((64, 16)).astype("float32")
            y = rng.standard_normal((64, 4)).astype("float32")
            scale = float(optimizer.dynamic_scale.numpy()) if dtype == "mixed_float16" else 1.0
            t = int(inner.iterations.numpy()) + 1
            lr = float(inner._get_current_learning_rate().numpy()) if hasattr(inner, "_get_current_learning_rate") else float(inner.learning_rate.numpy())
            before = [np.asarray(v.numpy()) for v in variables]
            grads = train_step(x, y)
            monitor.after_steps()
            records.append(
                {
                    "t": t,
                    "lr": lr,
                    "before": before,
                    "after": [np.asarray(v.numpy()) for v in variables],
                    "grads": [
                        (np.asarray(tf.cast(g, tf.float32)) / np.float32(scale)).astype(np.float32)
                        .astype(v.dtype if v.dtype != "bfloat16" else np.float32)
                        for g, v in zip(grads, variables)
                    ],
                    "slots": [_slots(inner, v) for v in variables],
                    "updated": int(inner.iterations.numpy()) == t,
                }
            )
        monitor.close()
        config = inner.get_config()
        return model, inner, records, config
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _expected(inner, config, record, i, var):
    old = record["before"][i].astype(np.float32)
    delta = old - record["after"][i].astype(np.float32)
    out = {"step": np.abs(delta), "update_ratio": reference.rms(delta) / reference.rms(old) if reference.rms(old) > 0 else np.nan}
    s = record["slots"][i]
    g = record["grads"][i].astype(np.float32)
    if var.dtype == "bfloat16":
        import ml_dtypes

        g = g.astype(ml_dtypes.bfloat16).astype(np.float32)
    t, lr = record["t"], record["lr"]
    kind = type(inner).__name__
    if kind in ("Adam", "AdamW"):
        v = s["_velocity_hats"] if config.get("amsgrad") else s["_velocities"]
        eff, upd, norm = reference.adam_parts(config, t, lr, s["_momentums"], v, g)
    elif kind == "Nadam":
        eff, upd, norm = reference.nadam_parts(config, t, lr, s["_momentums"], s["_velocities"], g, s["u_product"])
    elif kind == "Adamax":
        eff, upd, norm = reference.adamax_parts(config, t, lr, s["_m"], s["_u"], g)
    else:
        return out
    if config.get("weight_decay"):
        upd = upd + old * np.float32(config["weight_decay"]) * np.float32(lr)
    intended = np.abs(upd)
    out.update(
        effective_lr=eff,
        intended_step=intended,
        lost_fraction=np.count_nonzero((intended != 0) & (out["step"] == 0)) / intended.size,
        second_moment_rms=reference.rms(norm),
    )
    return out


@pytest.mark.parametrize("optimizer_name,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_every_statistic_matches_numpy(tmp_path, monkeypatch, optimizer_name, dtype):
    if dtype == "float32-chunked":
        # Every variable takes the large-variable path, in chunks of 100
        # elements with a tail (512 = 5 x 100 + 12, 128 = 100 + 28, 32 = tail only).
        from tb_stepsize import reduction

        monkeypatch.setattr(reduction, "SMALL_MAX", 16)
        monkeypatch.setattr(reduction, "CHUNK", 100)
        dtype = "float32"
    model, inner, records, config = _train(tmp_path, optimizer_name, dtype)
    run = tb_stepsize.load(str(tmp_path))
    variables = model.trainable_variables
    assert run.layers == [v.path for v in variables]
    logged = [r for r in records if r["updated"]]
    assert list(run.steps) == [r["t"] for r in logged]
    adam_family = type(inner).__name__ in ("Adam", "AdamW", "Nadam", "Adamax")
    assert set(run.metrics) == (
        {"step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"}
        if adam_family
        else {"step", "update_ratio"}
    )
    for col, record in enumerate(logged):
        for i, var in enumerate(variables):
            expected = _expected(inner, config, record, i, var)
            for metric, value in expected.items():
                what = f"{optimizer_name}/{dtype} t={record['t']} {var.path} {metric}"
                stats = run.stats[metric]
                row = run.values[metric][i, col]
                if stats == ["value"]:
                    rtol = 1e-3 if metric == "second_moment_rms" and dtype != "float32" else 2e-5
                    np.testing.assert_allclose(row[0], value, rtol=rtol, equal_nan=True, err_msg=what)
                else:
                    reference.check_stats(value, row, stats, what)
            steps, hists = run.histograms("step", var.path)
            reference.check_histogram(expected["step"], hists[list(steps).index(record["t"])], var.path)


def test_bfloat16_loses_small_updates_and_says_so(tmp_path):
    """In bfloat16, Adam's ~1e-2-relative-or-smaller steps round away for large weights."""
    model, inner, records, config = _train(tmp_path, "adam", "bfloat16")
    run = tb_stepsize.load(str(tmp_path))
    lost = run.matrix("lost_fraction", "value")
    assert np.nanmax(lost) > 0, "bfloat16 weights should lose some updates to rounding"
    zero = run.matrix("step", "zero_fraction")
    np.testing.assert_array_less(lost - 1e-12, zero + 1e-12)  # lost updates are zero steps
