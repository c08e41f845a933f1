"""Smoke test of the benchmark harness (bench/run.py --quick): it runs end to end and reports every contender.

No timing assertions: on tiny corpora the figures mean nothing; only the shape of the report is pinned.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from lib.trees import tree_digest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, 'bench', 'run.py')

EXPECTED = {
    'backup': {'engine_full': None, 'engine_incremental': None, 'engine_incremental_rehash': None, 'rsync': 'rsync',
               'rsync_durable': 'rsync', 'cp_sha256sum': 'sha256sum', 'ansible_copy': None, 'restic': 'restic', 'module_backup': None},
    'verify': {'engine_verify': None, 'sha256sum_c': 'sha256sum'},
    'restore': {'engine_restore': None, 'rsync': 'rsync', 'rsync_durable': 'rsync'},
}
CORPORA = ('large', 'small', 'mixed')


@pytest.fixture(scope='module')
def quick_report(tmp_path_factory):
    base = tmp_path_factory.mktemp('bench')
    results = base / 'results'
    proc = subprocess.run(
        [sys.executable, RUN, '--quick', '--runs', '1', '--warmup', '0', '--corpora-dir', str(base / 'corpora'),
         '--work-dir', str(base / 'work'), '--results-dir', str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = sorted(results.iterdir())
    assert len(written) == 1, written
    with open(written[0]) as handle:
        report = json.load(handle)
    return {'report': report, 'stdout': proc.stdout, 'base': base}


def test_quick_run_reports_a_median_and_peak_memory_for_every_contender_on_every_corpus(quick_report):
    report = quick_report['report']
    assert sorted(report['groups']) == sorted(CORPORA)
    for corpus in CORPORA:
        for group, contenders in EXPECTED.items():
            results = report['groups'][corpus][group]['contenders']
            assert sorted(results) == sorted(contenders), (corpus, group)
            for name, tool in contenders.items():
                summary = results[name]
                if tool is not None and shutil.which(tool) is None:
                    assert summary['runs'] == 0 and tool in summary['unavailable']
                    continue
                assert summary['runs'] == 1, (corpus, group, name, summary)
                assert summary['median_s'] > 0
                assert summary['peak_rss_kib'] > 0


def test_quick_run_gives_the_engine_to_peer_ratio_for_each_measured_peer(quick_report):
    report = quick_report['report']
    for corpus in CORPORA:
        for group in EXPECTED:
            entry = report['groups'][corpus][group]
            engine = entry['engine']
            measured = [name for name, s in entry['contenders'].items() if s.get('median_s') and name != engine]
            assert sorted(entry['ratios']) == sorted('%s/%s' % (engine, name) for name in measured)


def test_quick_run_checks_every_target_and_prints_the_table(quick_report):
    report, stdout = quick_report['report'], quick_report['stdout']
    assert {t['target'] for t in report['targets']} >= {
        'full backup with manifest <= 1.0 x rsync -a', 'verify >= 1.5 GB/s',
        'incremental of unchanged tree <= 0.25 x full', 'restore <= 1.2 x rsync -a into an empty target'}
    assert all(t['value'] is not None for t in report['targets'])
    assert 'engine/this' in stdout and 'results:' in stdout
    assert report['machine']['nproc'] >= 1 and report['corpora']['small']['files'] > 0


def test_quick_run_leaves_only_the_cached_corpora_behind(quick_report):
    base = quick_report['base']
    assert sorted(os.listdir(base / 'work')) == []
    names = sorted(os.listdir(base / 'corpora'))
    assert names == sorted([c + '-quick' for c in CORPORA] + [c + '-quick.stamp' for c in CORPORA])


def test_corpus_generation_is_deterministic_and_reused_while_its_stamp_matches(tmp_path):
    sys.path.insert(0, os.path.join(REPO, 'bench'))
    try:
        import corpora  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    first = corpora.ensure('mixed', quick=True, directory=str(tmp_path / 'one'))
    second = corpora.ensure('mixed', quick=True, directory=str(tmp_path / 'two'))
    assert tree_digest(first) == tree_digest(second)
    assert corpora.describe(first)['symlinks'] == corpora.QUICK_SPECS['mixed']['symlinks']
    marker = os.path.join(first, 'marker')
    with open(marker, 'w') as handle:
        handle.write('kept when the stamp matches')
    assert corpora.ensure('mixed', quick=True, directory=str(tmp_path / 'one')) == first
    assert os.path.exists(marker)
    os.unlink(first + '.stamp')
    corpora.ensure('mixed', quick=True, directory=str(tmp_path / 'one'))
    assert not os.path.exists(marker)
    assert tree_digest(first) == tree_digest(second)
