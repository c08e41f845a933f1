"""config_update's keep_backups: sibling .bak files beyond the newest N are pruned, only after a good update."""

import json
import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _config, _fsatomic, _manifest, _store
from lib import faults

ENGINE = [_config, _fsatomic, _store, _manifest]
OLD_BACKUPS = ('20260101000000', '20260102000000', '20260102000000-2', '20260103000000')


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'config.json'
    path.write_text('{"n": 0}\n')
    for stamp in OLD_BACKUPS:
        (tmp_path / ('config.json.bak.' + stamp)).write_text('{"n": "%s"}\n' % stamp)
    # look-alikes that are not backups of this file
    (tmp_path / 'config.json.bak.notastamp').write_text('x')
    (tmp_path / 'other.json.bak.20250101000000').write_text('x')
    return path


def backups(path):
    return sorted(name for name in os.listdir(path.parent) if name.startswith('config.json.bak.'))


def test_update_keeps_the_newest_backups_its_own_included(config):
    result = _config.update(str(config), set_values={'n': 1}, keep_backups=2)
    assert result['changed'] and result['backup']
    own = os.path.basename(result['backup'])
    assert backups(config) == sorted(['config.json.bak.20260103000000', own, 'config.json.bak.notastamp'])
    assert [os.path.basename(path) for path in result['pruned_backups']] == [
        'config.json.bak.' + stamp for stamp in OLD_BACKUPS[:3]]
    assert (config.parent / 'other.json.bak.20250101000000').exists()
    again = _config.update(str(config), set_values={'n': 1}, keep_backups=2)
    assert again['changed'] is False and again['pruned_backups'] == []


def test_counter_suffix_orders_after_the_plain_stamp(config):
    result = _config.update(str(config), set_values={'n': 0}, keep_backups=2)
    assert result['changed'] and result['method'] == 'none'
    assert [os.path.basename(path) for path in result['pruned_backups']] == [
        'config.json.bak.20260101000000', 'config.json.bak.20260102000000']


def test_check_mode_predicts_the_pruning_and_removes_nothing(config):
    before = backups(config)
    predicted = _config.update(str(config), set_values={'n': 1}, keep_backups=2, check=True)
    assert predicted['changed'] and len(predicted['pruned_backups']) == 3
    assert backups(config) == before and json.loads(config.read_text()) == {'n': 0}
    real = _config.update(str(config), set_values={'n': 1}, keep_backups=2)
    assert real['pruned_backups'] == predicted['pruned_backups']


def test_a_failed_update_prunes_nothing(config):
    before = backups(config)
    with pytest.raises(_config.ConfigError):
        _config.update(str(config), set_values={'n': 1}, required_keys=['missing'], keep_backups=1)
    assert backups(config) == before


def test_keep_backups_is_refused_with_the_store_and_below_one(config, tmp_path):
    with pytest.raises(_config.ConfigError, match='sibling backups'):
        _config.update(str(config), set_values={'n': 1}, backup='store', backup_root=str(tmp_path / 's'),
                       set_name='x', keep_backups=2)
    with pytest.raises(_config.ConfigError, match='positive integer'):
        _config.update(str(config), set_values={'n': 1}, keep_backups=0)


def test_a_fault_anywhere_loses_neither_the_file_nor_a_backup_that_must_stay(config):
    """Whatever call fails, the file holds the old or the new document, the newest backups that must be kept are
    intact, and a backup of the old content exists when the file holds the new one."""
    saved = {name: (config.parent / name).read_bytes() for name in backups(config)}
    original = config.read_bytes()

    def reset():
        for name in backups(config):
            os.unlink(str(config.parent / name))
        for name, data in saved.items():
            (config.parent / name).write_bytes(data)
        config.write_bytes(original)

    problems = []

    def check(k, plan, error):
        document = json.loads(config.read_text())
        now = backups(config)
        if document not in ({'n': 0}, {'n': 1}):
            problems.append('call %d: file holds %r' % (k, document))
        if 'config.json.bak.20260103000000' not in now and document == {'n': 0}:
            problems.append('call %d: the newest backup was pruned though the update did not happen' % k)
        if document == {'n': 1} and not any((config.parent / name).read_bytes() == original for name in now):
            problems.append('call %d: the file changed but no backup holds the old content' % k)
        for name in now:
            if name in saved and (config.parent / name).read_bytes() != saved[name]:
                problems.append('call %d: backup %s was changed' % (k, name))
        reset()

    points = faults.sweep(ENGINE, lambda: _config.update(str(config), set_values={'n': 1}, keep_backups=2), check)
    assert points >= 5 and not problems, problems[:10]
