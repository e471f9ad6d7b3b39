"""Packaging for tb_stepsize.

The dashboard's ES modules live in `frontend/`; `build_py` copies the files
named in `FRONTEND_FILES` into the package's `static/` folder, which is all
the plugin ever serves.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND_FILES = ("index.js", "heatmap.js", "drilldown.js", "colormaps.js", "api.js", "style.css")


class BuildWithFrontend(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "tb_stepsize", "static")
        os.makedirs(target, exist_ok=True)
        for name in FRONTEND_FILES:
            source = os.path.join(HERE, "frontend", name)
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(target, name))


setup(
    name="tb_stepsize",
    version="0.1.0",
    description="TensorBoard plugin and Keras callback showing the step every layer's optimizer applies",
    packages=["tb_stepsize"],
    python_requires=">=3.11",
    install_requires=["tensorboard>=2.21,<2.22", "numpy>=1.26", "werkzeug>=3.0"],
    extras_require={"train": ["tensorflow-cpu==2.21.0", "keras==3.15.1"]},
    entry_points={"tensorboard_plugins": ["stepsize = tb_stepsize.plugin_loader:StepSizeLoader"]},
    cmdclass={"build_py": BuildWithFrontend},
)
