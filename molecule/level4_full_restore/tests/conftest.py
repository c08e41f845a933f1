"""Make the scenarios' shared testinfra helpers (molecule/shared) importable."""

import os
import sys

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')
if SHARED not in sys.path:
    sys.path.insert(0, SHARED)
