"""Fixtures of the integration tests.

``site`` (function-scoped): a started demo site (tests/lib/demo_site.py: the demo application and every
lastgood path below the test's directory, its known good taken), stopped at the end.  A module that
needs another kind of site defines its own ``site``, which wins.
"""

import pytest

from lib.demo_site import running_site


@pytest.fixture
def site(tmp_path):
    with running_site(tmp_path) as current:
        yield current
