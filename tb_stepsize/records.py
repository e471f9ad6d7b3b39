"""TFRecord framing for event files, without TensorFlow.

An event file is a sequence of records, each: the data's length (uint64,
little-endian), the masked CRC32C of those 8 bytes, the data, and the
masked CRC32C of the data.  The checksum comes from `google_crc32c`, a
maintained native implementation: TensorBoard's own pure-Python fallback
costs about 3 ms per event, more than many training steps take.
"""

import errno
import os
import struct

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc(data):
    """The CRC32C of `data`, rotated and offset as the TFRecord format stores it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data):
    """`data` as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


class RecordFile:
    """Appends records to a new file at `path`; what `flush` returned from is in the OS's hands."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "xb")

    def write(self, data):
        self._file.write(frame(data))

    def flush(self):
        """Flush to the OS; raises if the file was removed (its directory deleted during training)."""
        self._file.flush()
        if not os.path.exists(self.path):
            raise FileNotFoundError(errno.ENOENT, "the event file was removed (log_dir deleted during training?)", self.path)

    def close(self):
        self._file.close()
