"""`records`: TFRecord framing without TensorFlow.

Checked three ways: the checksum against RFC 3720's check value and a
pure-Python CRC32C (`test_summary.masked_crc32c`), the file against what
TensorFlow's own record writer writes for the same payloads (byte for
byte), and the writer side importing no TensorFlow at all.
"""

import os
import subprocess
import sys

import pytest

from tb_stepsize import records
from test_summary import masked_crc32c, records as read_records

PAYLOADS = [b"", b"x", b"123456789", bytes(range(256)) * 40]


def test_checksum_is_the_masked_crc32c():
    crc = 0xE3069283  # CRC32C("123456789"), RFC 3720
    assert records.masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    for payload in PAYLOADS:
        assert records.masked_crc(payload) == masked_crc32c(payload)


def test_file_reads_back_and_equals_tensorflows(tmp_path):
    path = str(tmp_path / "ours")
    out = records.RecordFile(path)
    for payload in PAYLOADS:
        out.write(payload)
    out.flush()
    out.close()
    assert read_records(path) == PAYLOADS
    tf = pytest.importorskip("tensorflow")
    with tf.io.TFRecordWriter(str(tmp_path / "theirs")) as theirs:
        for payload in PAYLOADS:
            theirs.write(payload)
    assert open(path, "rb").read() == open(tmp_path / "theirs", "rb").read()


def test_flush_raises_when_the_file_was_removed(tmp_path):
    out = records.RecordFile(str(tmp_path / "f"))
    out.write(b"abc")
    os.remove(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match="removed"):
        out.flush()


def test_the_write_side_core_imports_no_tensorflow(tmp_path):
    """Writer, statistics and update metrics with TensorFlow made unimportable."""
    code = f"""
import sys
sys.modules["tensorflow"] = None
import numpy as np
from tb_stepsize import ops_numpy, step_output, summary, update_stats, monitor_base
layers = [{{"path": "d/kernel", "shape": [4], "dtype": "float32"}}]
writer = summary.StepWriter({str(tmp_path)!r}, layers, ["step", "update_ratio"], "SGD")
old = np.ones(4, np.float32); new = old - np.float32(0.5)
stats, hists, scalars = update_stats.reduce_update(ops_numpy.OPS, old, new, wanted=("step", "update_ratio"))
out = step_output.StepOutput(writer, None, ["step", "update_ratio"])
out.write(1, {{"step": stats["step"], "update_ratio": scalars["update_ratio"][:, None]}}, hists, learning_rate=0.5)
writer.close()
assert "tensorflow" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    import tb_stepsize

    run = tb_stepsize.load(str(tmp_path))
    assert run.steps.tolist() == [1]
    assert run.column("step", "max")[0][0, 0] == 0.5
    assert abs(run.column("update_ratio", "value")[0][0, 0] - 0.5) < 1e-7
