"""Run one case of tests/reliability/enospc_child.py on a tmpfs of its own, in a private mount namespace."""

import json
import os
import shutil
import subprocess
import sys

import pytest

CHILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability', 'enospc_child.py')


def run_child(case, tmp_path, options=None):
    """The JSON report of ``enospc_child.py <case>``, run under ``unshare -m`` on a fresh tmpfs.

    The tmpfs (mount ``options``, e.g. ``size=64k,mode=0755``) is mounted at ``tmp_path/tmpfs``,
    seen only by the child; its scratch directory is ``tmp_path/scratch`` on the normal disk.
    Skips the test without root, unshare(1) or mount namespaces, or when the child says the case
    cannot run here.
    """
    if os.geteuid() != 0 or not shutil.which('unshare'):
        pytest.skip('needs root and unshare(1) to mount a private tmpfs')
    mount_point = tmp_path / 'tmpfs'
    scratch = tmp_path / 'scratch'
    mount_point.mkdir()
    scratch.mkdir()
    mount = 'mount -t tmpfs -o %s tmpfs "$1"' % options if options else 'mount -t tmpfs tmpfs "$1"'
    script = 'mount --make-rprivate / && %s && exec "$2" "$3" "$4" "$1" "$5"' % mount
    proc = subprocess.run(['unshare', '-m', 'sh', '-c', script, 'sh', str(mount_point), sys.executable, CHILD, case,
                           str(scratch)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, check=False)
    if proc.returncode != 0 and b'unshare' in proc.stderr and b'Operation not permitted' in proc.stderr:
        pytest.skip('mount namespaces are not permitted here: %s' % proc.stderr.decode()[-200:])
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    if 'unavailable' in report:
        pytest.skip(report['unavailable'])
    return report
