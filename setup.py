"""Packaging for tb_stepsize.

The dashboard's ES modules live in `frontend/`; `build_py` copies the files
listed in `tb_stepsize/assets.py` (read here without importing the package,
which needs TensorBoard) into the package's `static/` folder, which is all
the plugin ever serves.
"""

import os
import runpy
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND_FILES = tuple(runpy.run_path(os.path.join(HERE, "tb_stepsize", "assets.py"))["STATIC_FILES"])


class BuildWithFrontend(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "tb_stepsize", "static")
        os.makedirs(target, exist_ok=True)
        for name in FRONTEND_FILES:
            source = os.path.join(HERE, "frontend", name)
            shutil.copyfile(source, os.path.join(target, name))


setup(
    name="tb_stepsize",
    version="0.1.0",
    description="TensorBoard plugin and Keras callback showing the step every layer's optimizer applies",
    packages=["tb_stepsize"],
    python_requires=">=3.11",
    # google-crc32c: the event writer's native checksum (no TensorFlow needed to write).
    install_requires=["tensorboard>=2.19", "numpy>=1.26", "werkzeug>=1.0.1", "google-crc32c>=1.5"],
    # Lower bounds only: the user's own framework build (CPU, CUDA, ...) is kept.
    extras_require={
        "jax": ["keras>=3.12", "jax>=0.4.30"],
        "torch": ["torch>=2.4"],
        "lightning": ["torch>=2.4", "pytorch-lightning>=2.4"],
    },
    entry_points={"tensorboard_plugins": ["stepsize = tb_stepsize.plugin_loader:StepSizeLoader"]},
    cmdclass={"build_py": BuildWithFrontend},
)
