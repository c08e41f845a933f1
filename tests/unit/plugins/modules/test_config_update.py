import json
import os
import sys

from ansible_collections.lastgood.rollback.plugins.module_utils import _config, _fsatomic
from ansible_collections.lastgood.rollback.plugins.modules import config_update
from lib import faults
from lib.module_runner import run_module
from lib.trees import tree_digest

YAML_TEXT = 'partyMode:\n  enabled: true  # flag\n  maxAgents: 4\n'


def _config_file(tmp_path, name='config.yaml', text=YAML_TEXT):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_values_change_reports_method_backup_and_a_text_diff(tmp_path):
    path = _config_file(tmp_path)
    failed, result = run_module(config_update, {'path': path, 'values': {'partyMode.enabled': False}}, diff=True)
    assert not failed and result['changed'] is True
    assert (result['method'], result['format'], result['restored']) == ('line_edit', 'yaml', None)
    assert open(result['backup']).read() == YAML_TEXT
    assert result['diff']['before'] == YAML_TEXT
    assert result['diff']['after'] == YAML_TEXT.replace('true', 'false')
    assert 'before' not in result and 'after' not in result


def test_no_diff_is_returned_unless_asked_for(tmp_path):
    failed, result = run_module(config_update, {'path': _config_file(tmp_path), 'values': {'partyMode.maxAgents': 2}})
    assert not failed and 'diff' not in result


def test_check_mode_predicts_the_change_and_writes_nothing(tmp_path):
    path = _config_file(tmp_path)
    digest = tree_digest(str(tmp_path))
    failed, result = run_module(config_update, {'path': path, 'values': {'partyMode.enabled': False}},
                                check_mode=True, diff=True)
    assert not failed and result['changed'] is True and result['backup'] is None
    assert 'false' in result['diff']['after']
    assert tree_digest(str(tmp_path)) == digest


def test_a_schema_violation_fails_with_nothing_changed(tmp_path):
    path = _config_file(tmp_path, 'modes.json', '{"version": 3}\n')
    digest = tree_digest(str(tmp_path))
    failed, result = run_module(config_update, {
        'path': path, 'values': {'version': 'three'},
        'schema': {'properties': {'version': {'type': 'integer'}}}})
    assert failed and 'schema violation at version' in result['msg'] and 'nothing was changed' in result['msg']
    assert (result['restored'], result['backup']) == (None, None)
    assert tree_digest(str(tmp_path)) == digest


def test_a_failed_write_is_reported_with_restored_and_the_backup(tmp_path):
    path = _config_file(tmp_path)
    # replace no. 1 publishes the backup, no. 2 the new file: fail the second one
    plan = faults.FaultPlan(fail_at=2, only={'replace'})
    with faults.inject([_config, _fsatomic], plan):
        failed, result = run_module(config_update, {'path': path, 'values': {'partyMode.enabled': False}})
    assert failed and result['restored'] is True and 'restored: yes' in result['msg']
    assert open(path).read() == YAML_TEXT and open(result['backup']).read() == YAML_TEXT


def test_missing_pyyaml_is_reported_with_the_library_name(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'yaml', None)
    failed, result = run_module(config_update, {'path': _config_file(tmp_path), 'values': {'a': 1}})
    assert failed and 'PyYAML' in result['msg'] and 'Failed to import the required Python library' in result['msg']


def test_content_and_values_together_are_refused(tmp_path):
    failed, result = run_module(config_update, {'path': _config_file(tmp_path), 'content': 'a: 1\n', 'values': {'a': 2}})
    assert failed and 'mutually exclusive' in result['msg']


def test_store_backup_names_the_backup_directory(tmp_path):
    path = _config_file(tmp_path, 'modes.json', '{"version": 3}\n')
    failed, result = run_module(config_update, {'path': path, 'values': {'version': 4}, 'backup': 'store',
                                                'backup_root': str(tmp_path / 'store'), 'set': 'registry'})
    assert not failed and result['backup'] == os.path.join(str(tmp_path / 'store' / 'registry'), result['backup_id'])
    stored = os.path.join(result['backup'], 'data', path.lstrip('/'))
    assert json.load(open(stored)) == {'version': 3}
