import calendar
import hashlib
import json
import subprocess
import time

from ansible.plugins.filter.core import to_nice_json

from ansible_collections.lastgood.rollback.plugins.module_utils import _full_restore

NOON = calendar.timegm(time.strptime('2026-12-07T12:00:00Z', '%Y-%m-%dT%H:%M:%SZ'))


def test_incident_is_named_after_the_day_and_the_run_unless_given():
    assert _full_restore.incident_name('', 'r1', NOON) == 'INC-20261207-r1'
    assert _full_restore.incident_name('SEC-4711', 'r1', NOON) == 'SEC-4711'


def test_checksum_list_follows_the_given_order_skips_missing_files_and_passes_sha256sum(tmp_path):
    (tmp_path / 'b.txt').write_text('second\n')
    (tmp_path / 'a.txt').write_text('first\n')
    listed = _full_restore.sha256sums(str(tmp_path), ['b.txt', 'missing', 'a.txt'])
    second, first = hashlib.sha256(b'second\n').hexdigest(), hashlib.sha256(b'first\n').hexdigest()
    assert listed == '%s  b.txt\n%s  a.txt\n' % (second, first)
    (tmp_path / 'SUMS').write_text(listed)
    assert subprocess.run(['sha256sum', '--check', '--strict', 'SUMS'], cwd=tmp_path, check=False,
                          capture_output=True).returncode == 0


def test_records_are_json_as_ansible_to_nice_json_sorted_writes_them():
    value = {'b': [1, {'z': None, 'a': 'é'}], 'a': True}
    assert _full_restore.nice_json(value) == to_nice_json(value, sort_keys=True) + '\n'


def test_restore_record_says_where_the_snapshot_went_and_what_came_from_where():
    params = {'run_id': 'r1', 'host': 'web1', 'snapshot_set': 'investigation', 'snapshot_paths': ['/srv/app'],
              'baseline_set': 'app', 'baseline_id': 'baseline', 'config_set': 'app', 'config_id': 'baseline'}
    preserved = {'incident': 'INC-1', 'started': '2026-12-07T12:00:00Z', 'tag': 'rollback-snapshot-r1',
                 'snapshot': {'id': 'snapshot-r1'}}
    baseline = {'backup_id': 'baseline', 'paths': [{'path': '/srv/app/code', 'state': 'restored'}]}
    record = _full_restore.restore_record(params, preserved, baseline, {}, ['appctl check'])
    assert record['snapshot'] == {'set': 'investigation', 'id': 'snapshot-r1', 'paths': ['/srv/app'],
                                  'tag': 'rollback-snapshot-r1'}
    assert record['baseline']['paths'] == baseline['paths']
    assert record['config'] == {'set': 'app', 'id': 'baseline', 'paths': []}
    assert json.loads(_full_restore.nice_json(record))['tests'] == ['appctl check']
