"""The machine a benchmark ran on, as its report names it (inference/cpuinfo.py's `describe`).

Loaded by its path in this script's own checkout, not imported: a "before" run points PYTHONPATH
at an older checkout, whose `inference` may have no `cpuinfo`, and its report still names the
machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "inference" / "cpuinfo.py"
_spec = importlib.util.spec_from_file_location("bench_cpuinfo", _PATH)
assert _spec is not None and _spec.loader is not None, _PATH
_cpuinfo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cpuinfo)

describe = _cpuinfo.describe
