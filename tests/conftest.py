import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Test helpers (reference.py, ...) live beside the tests; the package under
# test is the installed one, never the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def static_sandbox(tmp_path_factory):
    """`plugin_helpers.static_sandbox` in a fresh directory, once per module."""
    import plugin_helpers

    return plugin_helpers.static_sandbox(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
def sandbox(static_sandbox, monkeypatch):
    """`(client, static dir, listed files' bytes)`, the plugin serving from that static dir."""
    from tb_stepsize import plugin

    monkeypatch.setattr(plugin, "_STATIC_DIR", static_sandbox[1])
    return static_sandbox
