"""Screenshot of the dashboard with the Findings panel, for the README.

    .venv/bin/python scripts/screenshot_findings.py LOGDIR [OUT] [--run cnn_adam] [--kind partly_frozen]

LOGDIR holds the demo's runs (`scripts/demo.sh` or `demo/train.py --logdir`);
a real `tensorboard` serves it, Debian's Chromium shows the Step Sizes tab
with `--run` selected and its first finding of `--kind` chosen.
"""

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "browser"))

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, TensorBoard, open_dashboard  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir")
    parser.add_argument("out", nargs="?", default=os.path.join(REPO, "docs", "findings.png"))
    parser.add_argument("--run", default="cnn_adam")
    parser.add_argument("--kind", default="partly_frozen")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, TensorBoard(args.logdir, os.path.join(tmp, "tb.log")) as tb:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            with open_dashboard(browser, tb.url + "/#stepsize") as dash:
                dash.set(run=args.run)
                dash.frame.wait_for_selector(f'.ss-finding[data-id^="{args.kind}"]', timeout=30000)
                n = dash.hook("drawCount")
                dash.frame.locator(f'.ss-finding[data-id^="{args.kind}"]').first.click()
                dash.wait_drawn(n)
                dash.page.mouse.move(0, 0)
                dash.page.screenshot(path=args.out)
            browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
