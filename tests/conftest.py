import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Test helpers (reference.py, ...) live beside the tests; the package under
# test is the installed one, never the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
