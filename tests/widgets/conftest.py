"""Headless widgets: the Agg backend (the widgets draw off pyplot, but be sure nothing opens a window)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
