"""Runs `backend_cases.py` (or a script) on one Keras backend, in this process.

    python tests/backend_runner.py jax [pytest arguments]
    python tests/backend_runner.py torch --script demo/custom_loop_torch.py [its arguments]

Sets `KERAS_BACKEND` before anything imports Keras and, on JAX and torch,
blocks TensorFlow (`sys.modules["tensorflow"] = None`: any `import
tensorflow` raises ImportError), so that whatever passes here runs without
TensorFlow installed.  `test_backends` starts one of these per backend.
"""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    backend, rest = argv[0], argv[1:]
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend != "tensorflow":
        sys.modules["tensorflow"] = None
    if rest[:1] == ["--script"]:
        sys.argv = rest[1:]
        runpy.run_path(rest[1], run_name="__main__")
        return 0
    import pytest

    quiet = ["-W", "ignore::tb_stepsize.live_findings.FindingWarning", "-p", "no:logging"]
    return pytest.main([os.path.join(HERE, "backend_cases.py"), "-p", "no:cacheprovider", *quiet, *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
