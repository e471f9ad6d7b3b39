"""`monitor_base`: the checks every monitor shares (no framework needed)."""

import pytest

from tb_stepsize import monitor_base


def test_select_keeps_order_and_applies_include_then_exclude():
    named = [(n, i) for i, n in enumerate(["enc/q/kernel", "enc/q/bias", "dec/kernel", "dec/bias"])]
    assert monitor_base.select(named, None, None) == named
    assert [n for n, _ in monitor_base.select(named, "kernel", None)] == ["enc/q/kernel", "dec/kernel"]
    assert [n for n, _ in monitor_base.select(named, "^enc", "bias$")] == ["enc/q/kernel"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("quiet", 1, None, None), "on_error"),
        (("warn", 0, None, None), "every_n_steps"),
        (("warn", 1, ["step", "nope"], None), "metrics"),
        (("warn", 1, "step", None), "metrics"),
        (("warn", 1, None, 3), "on_finding"),
    ],
)
def test_bad_arguments_name_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        monitor_base.check_arguments(*args)


def test_unwritable_log_dir_is_a_monitor_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(monitor_base.MonitorError, match="not writable"):
        monitor_base.check_writable(str(blocker / "run"))
    monitor_base.check_writable(str(tmp_path / "run"))
    assert (tmp_path / "run").is_dir()


def test_completed_updates_counts_logged_updates_like_enumerating_them():
    for accumulation in (1, 3):
        for every_n in (1, 2, 5):
            for before in range(0, 12):
                for n in range(0, 9):
                    after = before + n
                    completed = [t for t in range(before // accumulation + 1, after // accumulation + 1)]
                    logged = [t for t in completed if (t - 1) % every_n == 0]
                    want_last = completed[-1] if completed and completed[-1] in logged else None
                    got = monitor_base.completed_updates(before, after, accumulation, every_n)
                    assert got == (len(logged), want_last), (before, after, accumulation, every_n)
