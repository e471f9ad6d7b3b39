"""TensorBoard entry point for the Step Sizes dashboard.

TensorBoard imports this module at start-up for every installed plugin, so it
imports nothing but TensorBoard's `base_plugin`; the plugin itself (numpy,
werkzeug, the reader) is imported in `load`, where a failure only disables
this dashboard.

Sampling: TensorBoard keeps at most 10 samples per tag of a plugin it does
not know.  Unless `--samples_per_plugin` already names them, the loader sets
`stepsize=0` (keep every logged step of the statistics: 4 bytes per
layer-step per statistic) and `stepsize_histograms=1000` (a uniform sample
of 1,000 logged steps' histograms, always including the latest: a
histogram is ~0.5 kB per layer and metric, so this bounds their memory),
with both the Python loader and the Rust data server.  A value the user
gives, e.g. `--samples_per_plugin=stepsize=500`, is kept as is.
"""

from tensorboard.plugins import base_plugin

# Plugin names of metadata.PLUGIN_NAME and HISTOGRAM_PLUGIN_NAME (not imported:
# start-up stays minimal) -> default samples per tag (0 = all).
DEFAULT_SAMPLES = {"stepsize": 0, "stepsize_histograms": 1000}


def _parse_samples(text):
    """`"a=1,b=2"` -> `{"a": 1, "b": 2}` (None if `text` is not in that form)."""
    result = {}
    for token in text.split(","):
        token = token.strip()
        if not token:
            continue
        key, sep, value = token.partition("=")
        try:
            result[key.strip()] = int(value)
        except ValueError:
            return None
        if not sep:
            return None
    return result


class StepSizeLoader(base_plugin.TBLoader):
    """Loads `tb_stepsize.plugin.StepSizePlugin` lazily."""

    def fix_flags(self, flags):
        samples = getattr(flags, "samples_per_plugin", None)
        if samples is None:
            samples = {}
        elif isinstance(samples, str):
            # `program.TensorBoard.configure(samples_per_plugin="...")` bypasses
            # argparse's conversion; leave malformed values to TensorBoard.
            parsed = _parse_samples(samples)
            if parsed is None:
                return
            samples = parsed
        elif not isinstance(samples, dict):
            return
        flags.samples_per_plugin = {**DEFAULT_SAMPLES, **samples}

    def load(self, context):
        from tb_stepsize.plugin import StepSizePlugin

        return StepSizePlugin(context)
