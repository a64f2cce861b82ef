"""lambda-crud-detector's command line: what a security team runs against its own account.

The commands judge with the deployed function's own modules (``rule``, ``cloudtrail``, ``finding``,
``publisher``), so that a backtest gives the verdicts the function would give. Those modules import each other by
top-level name, as they do in Lambda's /var/task, so their directory goes on ``sys.path`` here: in a checkout it
is functions/detector; an installed wheel carries a copy of it as ``lambda_crud_detector/detector/`` (see
``[tool.setuptools]`` in pyproject.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def detector_sources() -> Path:
    """The directory holding the function's modules: the installed copy, or the checkout's functions/detector."""
    installed = _PACKAGE / "detector"
    return installed if installed.is_dir() else _PACKAGE.parent / "functions" / "detector"


DETECTOR_SOURCES = detector_sources()
if str(DETECTOR_SOURCES) not in sys.path:
    sys.path.insert(0, str(DETECTOR_SOURCES))
