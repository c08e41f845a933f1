"""Reliability suite: shared fixtures and the summary table printed at the end of a run."""

import json
import os
import pathlib
import tempfile

import pytest

from lib import faults, scenarios

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(ROOT, 'tests', 'output')
SUMMARY_FILE = os.path.join(OUTPUT, 'reliability-summary.json')
MUTATION_FILE = os.path.join(OUTPUT, 'mutation-check.json')


FAST_TMP = '/dev/shm'


@pytest.fixture
def fast_dir(tmp_path):
    """A scratch directory on tmpfs when there is one (real fsyncs cost milliseconds each on disk).

    Durability is judged by tests/lib/durability.py from the calls the engine makes,
    not by the file system, so nothing is lost by running the sweeps in memory.
    """
    if not os.access(FAST_TMP, os.W_OK):
        yield tmp_path
        return
    path = tempfile.mkdtemp(prefix='lastgood-reliability-', dir=FAST_TMP)
    try:
        yield pathlib.Path(path)
    finally:
        scenarios.remove_tree(path)


@pytest.fixture
def scenario(fast_dir):
    """``scenario(name)`` -> a prepared scenario, or a skip naming the missing engine file."""
    def make(name):
        try:
            return scenarios.make(name, fast_dir / name)
        except scenarios.Unavailable as exc:
            pytest.skip(str(exc))
    return make


@pytest.fixture
def recovering_scenario(scenario):
    """``recovering_scenario(name)`` -> a prepared scenario whose operation has a recovery step, or a skip."""
    def make(name):
        sc = scenario(name)
        if not sc.has_recovery:
            pytest.skip('%s has no recovery step: its writes are single atomic renames' % name)
        return sc
    return make


def _mutation_row():
    try:
        with open(MUTATION_FILE) as handle:
            data = json.load(handle)
        return '%d of %d killed (scripts/mutation_check.py, %s)' % (data['killed'], data['total'], data['when'])
    except (OSError, ValueError, KeyError):
        return 'not run in this session (python scripts/mutation_check.py)'


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # pylint: disable=unused-argument
    if not faults.STATS:
        return
    rows = [
        ('fault points exercised', str(faults.STATS['fault_points'])),
        ('faults injected into recovery', str(faults.STATS['recovery_fault_points'])),
        ('crash iterations (SIGKILL)', str(faults.STATS['crash_iterations'])),
        ('hostile inputs fuzzed', str(faults.STATS['inputs_fuzzed'])),
        ('trees judged by the rsync -aHAXS oracle', str(faults.STATS['oracle_trees'])),
        ('mutations killed', _mutation_row()),
    ]
    width = max(len(name) for name, _value in rows)
    terminalreporter.section('reliability summary')
    terminalreporter.write_line('| %-*s | %s |' % (width, 'measure', 'count'))
    terminalreporter.write_line('|%s|%s|' % ('-' * (width + 2), '-' * 7))
    for name, value in rows:
        terminalreporter.write_line('| %-*s | %s |' % (width, name, value))
    os.makedirs(OUTPUT, exist_ok=True)
    with open(SUMMARY_FILE, 'w') as handle:
        json.dump(dict(faults.STATS), handle, indent=2, sort_keys=True)
