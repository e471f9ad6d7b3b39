"""`listing` (tags classified once, the Catalog's signatures) and `reader`'s one name check (no TensorFlow)."""

import pytest
from tensorboard import context as tb_context

import plugin_helpers as h
from tb_stepsize import listing, metadata, reader

CTX = tb_context.RequestContext()


def test_classify_sorts_tags_by_kind_once():
    digest = "abc"
    contents = {
        "step/abc/p50": metadata.stats_content(digest, "step", "p50"),
        "index/abc": metadata.index_content(digest, h.LAYERS_A, ["step"], "Adam"),
        "step/abc/hist": metadata.histogram_content(digest, "step"),
        "z/bad": metadata.FormatError("format version 3 is newer"),
        "a/bad": metadata.FormatError("not JSON"),
        "step/abc/max": metadata.stats_content(digest, "step", "max"),
    }
    tags = listing.RunTags.classify(contents)
    assert list(tags.index) == ["index/abc"]
    assert list(tags.stats) == ["step/abc/max", "step/abc/p50"]  # sorted by tag
    assert list(tags.histogram) == ["step/abc/hist"]
    assert tags.problems == ["a/bad: not JSON", "z/bad: format version 3 is newer"]
    assert tags.names == frozenset(contents) and tags.listed
    assert not listing.RunTags.classify({"step/abc/p50": contents["step/abc/p50"]}).listed
    assert listing.RunTags.classify({"x": metadata.FormatError("bad")}).listed  # reported, so listed


@pytest.fixture()
def provider(tmp_path):
    h.write_synthetic_run(str(tmp_path / "run1"), steps_a=range(1, 4), steps_b=())
    h.write_scalar_only_run(str(tmp_path / "scalars"))
    multiplexer, provider = h.make_provider(str(tmp_path))
    return tmp_path, multiplexer, provider


def test_list_runs_and_listing(provider):
    _, _, p = provider
    runs = listing.list_runs(p, CTX)
    assert list(runs) == ["run1"]  # the scalar-only run has no step-size tags
    tags = runs["run1"]
    assert len(tags.index) == 1 and tags.problems == []
    assert len(tags.stats) == len(metadata.ELEMENT_STATS) + 1  # step's statistics + update_ratio's value
    assert len(tags.histogram) == 1  # step's histograms
    found = listing.Listing(listing.list_series(p, CTX), None)
    assert found.runs() == ["run1"] and found.has_data()
    assert found.tags["run1"] == tags
    (state,) = found.index_state["run1"]
    assert state[0] == next(iter(tags.index)) and state[1] == 3


def test_signature_changes_with_new_data(provider, monkeypatch):
    monkeypatch.setattr(listing, "LISTING_TTL_SECS", 0.0)
    root, multiplexer, p = provider
    catalog = listing.Catalog(p)
    found = catalog.listing(CTX, "")
    first = catalog.signatures(CTX, "", found, ["run1"])["run1"]
    assert first is not None and catalog.signatures(CTX, "", found, ["run1"])["run1"] == first
    h.append_steps(str(root / "run1"), range(4, 6), layers=h.LAYERS_A)
    assert catalog.signatures(CTX, "", found, ["run1"])["run1"] == first  # TensorBoard has not reloaded
    multiplexer.Reload()
    assert catalog.signatures(CTX, "", found, ["run1"])["run1"] != first


def test_read_run_lists_itself(provider):
    _, _, p = provider
    assert reader.read_run(p, CTX, "", "nope") is None
    data = reader.read_run(p, CTX, "", "run1")
    assert data.steps.tolist() == [1, 2, 3] and data.metrics == ["step", "update_ratio"]
    assert data.summary() == {
        "layers": data.layers,
        "layer_info": data.layer_info,
        "metrics": ["step", "update_ratio"],
        "stats": {"step": list(metadata.ELEMENT_STATS), "update_ratio": ["value"]},
        "max_step": 3,
        "num_steps": 3,
        "optimizer": "Adam",
    }


def test_one_name_check(provider):
    _, _, p = provider
    data = reader.read_run(p, CTX, "", "run1")
    data.check("step", "p50", "dense/bias")
    for call, word in (
        (lambda: data.check("nope"), "metric 'nope'"),
        (lambda: data.check("update_ratio", "p50"), "stat 'p50'"),
        (lambda: data.check("step", layer="nope"), "layer 'nope'"),
        (lambda: data.column("step", "value"), "stat 'value'"),
        (lambda: data.histograms("step", "nope"), "layer 'nope'"),
        (lambda: data.pooled_span("step", "nope", 1, 2), "layer 'nope'"),
        (lambda: data.pooled_span("step", "dense/bias", 4, 9), "no logged step in [4, 9]"),
    ):
        with pytest.raises(reader.NotFound) as e:
            call()
        assert isinstance(e.value, KeyError) and word in str(e.value) and not str(e.value).startswith("\"")


def test_pooled_span_over_steps(provider):
    _, _, p = provider
    data = reader.read_run(p, CTX, "", "run1")
    values, present = data.pooled_span("update_ratio", "dense/bias", 2, 3)
    assert present.tolist() == [True]
    assert values[0] == pytest.approx(data.matrix("update_ratio", "value")[1, 1:3].mean(), rel=1e-12)
    values, _ = data.pooled_span("step", "dense/kernel", -10, 1)  # only step 1: its values exactly
    assert values.tolist() == [data.matrix("step", s)[0, 0] for s in metadata.ELEMENT_STATS]
