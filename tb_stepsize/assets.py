"""The dashboard's static files: the one list of what the plugin may serve.

`setup.py` reads this file (without importing the package) to copy these
files from `frontend/` into the package's `static/` folder, and the plugin
serves exactly these names from there -- no path is ever built from a
request.  Add a frontend module here and nowhere else.
"""

# file name in frontend/ and in the package's static/ -> content type
STATIC_FILES = {
    "index.js": "text/javascript",
    "app.js": "text/javascript",
    "state.js": "text/javascript",
    "model.js": "text/javascript",
    "catalog.js": "text/javascript",
    "grid.js": "text/javascript",
    "scale.js": "text/javascript",
    "format.js": "text/javascript",
    "host.js": "text/javascript",
    "dom.js": "text/javascript",
    "canvas.js": "text/javascript",
    "controls.js": "text/javascript",
    "card.js": "text/javascript",
    "heatmap.js": "text/javascript",
    "axis.js": "text/javascript",
    "legend.js": "text/javascript",
    "tooltip.js": "text/javascript",
    "drilldown.js": "text/javascript",
    "drills.js": "text/javascript",
    "charts.js": "text/javascript",
    "export.js": "text/javascript",
    "findings.js": "text/javascript",
    "findingspanel.js": "text/javascript",
    "marks.js": "text/javascript",
    "strip.js": "text/javascript",
    "hooks.js": "text/javascript",
    "colormaps.js": "text/javascript",
    "rows.js": "text/javascript",
    "navigate.js": "text/javascript",
    "viewbar.js": "text/javascript",
    "style.css": "text/css",
}
