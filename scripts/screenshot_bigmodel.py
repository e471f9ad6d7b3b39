"""Screenshots of the dashboard on a big model (600 variables x 100,000 steps), for the README.

    .venv/bin/python scripts/screenshot_bigmodel.py [--logdir DIR] [--out docs/bigmodel.png] [--all]

Writes (or reuses) `tests/browser/designed_bigmodel.py`'s run in `--logdir`,
serves it with a real `tensorboard` and takes, in Debian's Chromium, the
grouped view (rows grouped by module, the outlier's module listed, sorted by
mean, a cell hovered) into `--out`; with `--all` also the zoomed, sorted and
compare drill-down views into artifacts/screenshots/bigmodel_*.png.
"""

import argparse
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "browser"))

import designed_bigmodel as d  # noqa: E402
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TensorBoard, open_dashboard  # noqa: E402


def hover(dash, row, col):
    box = dash.page.query_selector("iframe").bounding_box()
    c = dash.js("([r, c]) => window.__stepsize.cellCenter(0, r, c)", [row, col])
    dash.page.mouse.move(box["x"] + c["x"], box["y"] + c["y"])
    dash.page.wait_for_timeout(2000)  # the tooltip's other statistics (read cold)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default=os.path.join(tempfile.gettempdir(), "tb_stepsize_bigmodel"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "bigmodel.png"))
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    d.write_logdir(args.logdir)
    d.write_run(os.path.join(args.logdir, d.OTHER_RUN), d.OTHER_STEPS)
    from playwright.sync_api import sync_playwright

    os.makedirs(SCREENSHOTS, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, TensorBoard(args.logdir, os.path.join(tmp, "tb.log")) as tb:
        d.wait_served(tb.url)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            url = tb.url + f"/#stepsize&p.stepsize.run={d.RUN}"
            with open_dashboard(browser, url, viewport={"width": 1400, "height": 1000}) as dash:
                dash.set(group="2", expand=json.dumps(["model/block07"]), sort="mean")
                hover(dash, 20, 500)
                dash.page.screenshot(path=args.out)
                print(args.out)
                if args.all:
                    dash.set(group="", expand="", sort="model", start="50001", end="50100")
                    hover(dash, 30, 40)
                    dash.shot("bigmodel_zoomed.png")
                    dash.set(start="", end="", sort="mean")
                    hover(dash, 0, 300)
                    dash.shot("bigmodel_sorted.png")
                    dash.set(sort="model", compare="side", run2=d.OTHER_RUN, group="2")
                    dash.set(expand=json.dumps(["model/block03"]))
                    hover(dash, 5, 20)
                    dash.page.mouse.down()
                    dash.page.mouse.up()
                    dash.frame.wait_for_function("() => window.__stepsize.drills().every(x => x.open && x.hasData)", timeout=60000)
                    dash.page.mouse.move(0, 0)
                    dash.js("() => document.querySelector('.ss-drill').scrollIntoView({block: 'start'})")
                    dash.page.wait_for_timeout(500)
                    dash.shot("bigmodel_compare_drill.png")
                    print(os.path.join(SCREENSHOTS, "bigmodel_*.png"))
            browser.close()


if __name__ == "__main__":
    main()
