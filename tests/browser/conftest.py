"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by
Playwright (a real `tensorboard` process is started per test module)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS  # noqa: E402


@pytest.fixture(scope="session")
def screenshots():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (scripts/test.sh installs Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def bigmodel_logdir(tmp_path_factory):
    """The big model's logdir (`designed_bigmodel`: 600 variables x 100,000
    steps, written in a few seconds), made once per test session, with a
    short second run of the same model to compare with."""
    import designed_bigmodel as d

    root = str(tmp_path_factory.mktemp("bigmodel"))
    d.write_logdir(root)
    d.write_run(os.path.join(root, d.OTHER_RUN), d.OTHER_STEPS)
    return root
