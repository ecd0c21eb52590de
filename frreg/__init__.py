"""frreg: retrain the fr_regressor_v2 VMAF ensemble and decide whether it may ship.

The public surface is small: load a corpus, run leave-one-source-out
training, evaluate the ship gate, write the verdict.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
