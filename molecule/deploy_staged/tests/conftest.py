"""Make the scenarios' shared testinfra helpers (molecule/shared) importable, with pytest's assert messages."""

import os
import sys

import pytest

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')
if SHARED not in sys.path:
    sys.path.insert(0, SHARED)
pytest.register_assert_rewrite('lastgood_testinfra')
