"""Unit tests run without Ray: importing it fails here, so nothing under test may need it."""
import sys

sys.modules["ray"] = None  # type: ignore[assignment]
