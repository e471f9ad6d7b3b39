"""Precision of the findings rules on the demo (`demo/train.py`, about a minute).

The demo's four runs are healthy but for what they are built to show: no
`error` except bfloat16's, the dense kernel's dead units, the attention key
biases.  Every other warning they may give is listed in `TRUE_WARNINGS`
with why it is true; a warning not listed fails the test.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

import tb_stepsize  # noqa: E402
from tb_stepsize import findings  # noqa: E402

DEMO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "train.py")

# Why these warnings are true.  The demo's peak learning rates are aggressive
# on purpose (Adam 3e-3, AdamW 2e-3, SGD 0.05 with momentum 0.9, i.e. 0.5 per
# unit of gradient at steady state; each reached at step 38 of 384 after a
# linear warm-up), and around the peak these layers change by 1.0-1.3e-2 of
# their size at every step for 5 to 90 logged steps: above the 1e-2 that the
# rule of thumb (cs231n; DL4J's training UI guide: ~1e-3 is healthy) calls
# too fast -- at that rate a weight is renewed within ~100 steps.  The run
# still learns (its loss falls), so they are warnings, not errors.  Biases
# start at zero, so `ratio_high` does not judge them (their ratio lingers near
# 1e-2 into the decay: a bias's scale comes from training itself).  All sit
# just above the threshold: each is allowed, not required (another machine
# may round one of them below it).
WARMUP_PEAK = "update_ratio 1.0-1.3e-2 at the peak of an aggressive warm-up"
EMBEDDING = "embedding rows start small (uniform +-0.05) and each is hit by a few tokens only: ~1e-2 at the peak"
TRUE_WARNINGS = {
    "cnn_adam": {
        ("ratio_high", "cnn/conv1/kernel"): WARMUP_PEAK,
        ("ratio_high", "cnn/conv2/kernel"): WARMUP_PEAK,
        ("ratio_high", "cnn/conv3/kernel"): WARMUP_PEAK,
    },
    "cnn_sgd": {
        ("ratio_high", "cnn/conv1/kernel"): WARMUP_PEAK,
        ("ratio_high", "cnn/conv2/kernel"): WARMUP_PEAK,
        ("ratio_high", "cnn/conv3/kernel"): WARMUP_PEAK,
        ("ratio_high", "cnn/logits/kernel"): WARMUP_PEAK,
    },
    "transformer_adamw": {
        ("ratio_high", "embed/embeddings"): EMBEDDING,
        ("ratio_high", "block0_attn/query/kernel"): WARMUP_PEAK,
        ("ratio_high", "block0_attn/key/kernel"): WARMUP_PEAK,
    },
    "mlp_bfloat16": {},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("demo")
    out = subprocess.run(
        [sys.executable, DEMO, "--logdir", str(logdir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = tb_stepsize.load_runs(str(logdir))
    return {name: findings.evaluate(runs[name]) for name in TRUE_WARNINGS}, out.stderr


def test_no_errors_but_bfloat16s(demo):
    found, _ = demo
    for name in ("cnn_adam", "cnn_sgd", "transformer_adamw"):
        assert not [f for f in found[name] if f.severity == "error"], name
    errors = [f for f in found["mlp_bfloat16"] if f.severity == "error"]
    assert [(f.kind, f.layer, f.first_step) for f in errors] == [("no_update", None, 1)]
    assert "rounded away in bfloat16" in errors[0].message


def test_the_dense_kernels_dead_units(demo):
    found, _ = demo
    (f,) = [f for f in found["cnn_adam"] if f.kind == "partly_frozen"]
    assert f.layer == "cnn/dense/kernel"
    assert 220 <= f.first_step <= 260 and f.value > 0.5


def test_the_attention_key_biases_are_outliers(demo):
    found, _ = demo
    infos = [f for f in found["transformer_adamw"] if f.severity == "info"]
    assert {(f.kind, f.layer) for f in infos} == {
        ("outlier_layer", "block0_attn/key/bias"),
        ("outlier_layer", "block1_attn/key/bias"),
    }
    assert all("softmax ignores a constant shift" in f.message for f in infos)


def test_every_other_warning_is_a_true_one(demo):
    found, _ = demo
    for name, allowed in TRUE_WARNINGS.items():
        expected = {("partly_frozen", "cnn/dense/kernel")} if name == "cnn_adam" else set()
        other = {(f.kind, f.layer) for f in found[name] if f.severity == "warning"} - expected
        assert other <= set(allowed), (name, sorted(other - set(allowed)))


def test_training_time_warnings_were_given(demo):
    _, stderr = demo
    assert stderr.count("tb_stepsize: No weight moved in any of the 4 layers") == 1
    assert stderr.count("of the elements of cnn/dense/kernel have not moved since about step") == 1
