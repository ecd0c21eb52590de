"""``python -m frreg.contracts.surface``: write or check the committed CLI surface snapshot."""

from __future__ import annotations

import sys

from argvcontract.surface import main

if __name__ == "__main__":
    sys.exit(main())
