"""Turning a feature off: the override line, the read-back and the whole pass, on files in a temp dir.

molecule/level1_feature_flag runs the module through the Level 1 playbook on the demo application on SSH hosts.
"""

import json
import os
import stat
import sys

import pytest
from hypothesis import given, strategies as st

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _feature
from ansible_collections.lastgood.rollback.plugins.modules import feature_flag
from lib.module_runner import run_module

LINE = st.text(alphabet=st.characters(blacklist_characters='\n\r', blacklist_categories=('Cs',)), max_size=30)


@pytest.mark.parametrize('feature, name', [('partyMode', 'PARTY_MODE_ENABLED'), ('beta', 'BETA_ENABLED'),
                                           ('darkMode2', 'DARK_MODE2_ENABLED')])
def test_override_names_follow_the_feature_name(feature, name):
    assert _feature.override_name(feature) == name


def _lines(text):
    """Lines as lineinfile sees them: ended by \\n only, no empty line after a final \\n."""
    parts = text.split('\n')
    return parts[:-1] if parts[-1] == '' else parts


@given(st.lists(st.one_of(LINE, st.sampled_from(['X_ENABLED=true', 'export X_ENABLED = 1', '  X_ENABLED=', 'Y=1']))),
       st.booleans())
def test_the_override_sets_the_flag_once_and_leaves_every_other_line(lines, final_newline):
    text = '\n'.join(lines) + ('\n' if final_newline and lines else '')
    new = _feature.override_text(text, 'X_ENABLED')
    setting = [line for line in _lines(new) if _feature.re.match(r'^\s*(export\s+)?X_ENABLED\s*=', line)]
    assert setting[-1] == 'X_ENABLED=false'
    assert _feature.override_text(new, 'X_ENABLED') == new
    others = [line for line in _lines(text) if not _feature.re.match(r'^\s*(export\s+)?X_ENABLED\s*=', line)]
    assert [line for line in _lines(new) if line not in setting] == others


def test_set_override_creates_with_its_mode_and_then_changes_nothing(tmp_path):
    path = str(tmp_path / 'app.env')
    assert _feature.set_override(path, 'X_ENABLED', 0o640, check_mode=True) is True
    assert not os.path.exists(path)
    assert _feature.set_override(path, 'X_ENABLED', 0o640, check_mode=False) is True
    assert open(path, encoding='utf-8').read() == 'X_ENABLED=false\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert _feature.set_override(path, 'X_ENABLED', 0o640, check_mode=False) is False


def _flags_command(tmp_path):
    """A stand-in application: its flags are what the override file says (a shell script a test can read)."""
    script = tmp_path / 'flags.py'
    script.write_text('import json, sys\n'
                      'text = open(sys.argv[1]).read() if __import__("os").path.exists(sys.argv[1]) else ""\n'
                      'print(json.dumps({"flags": {"x.enabled": "X_ENABLED=false" not in text}}))\n')
    return [sys.executable, str(script), str(tmp_path / 'app.env')]


def _params(tmp_path, **options):
    params = {'via': ['override'], 'override_file': str(tmp_path / 'app.env'), 'override_name': '',
              'override_mode': '0644', 'config_file': str(tmp_path / 'config.yaml'), 'config_key': '',
              'backup_root': str(tmp_path / 'store'), 'backup_set': 'cfg', 'apply_command': [],
              'readback_url': '', 'readback_command': _flags_command(tmp_path), 'readback_keys': [],
              'readback_retries': 0, 'readback_delay': 0, 'audit_log': str(tmp_path / 'audit.jsonl'),
              'end_sessions_command': [], 'session_reason': 'feature_disabled', 'run_id': 'r1'}
    params.update(options)
    return params


def test_turn_off_ends_the_logged_sessions_and_records_it_once(tmp_path):
    audit = str(tmp_path / 'audit.jsonl')
    _audit.append(audit, 'session_start', detail={'session_id': 's1'})
    summary = _feature.turn_off(_params(tmp_path), 'x')
    assert summary == {'feature': 'x', 'via': ['override'], 'reads': False, 'sessions_terminated': ['s1'],
                       'changed': True}
    again = _feature.turn_off(_params(tmp_path), 'x')
    assert again['changed'] is False and again['sessions_terminated'] == []
    events = [record['event'] for record in _audit.records(audit)]
    assert events == ['session_start', 'session_end', 'feature_disabled']


def test_a_flag_that_never_reads_off_fails_saying_the_files_changed(tmp_path):
    stubborn = [sys.executable, '-c', 'print(\'{"flags": {"x.enabled": true}}\')']
    with pytest.raises(_feature.FeatureError, match='still reports flags / x.enabled = True.*files are changed'):
        _feature.turn_off(_params(tmp_path, readback_command=stubborn, readback_retries=2), 'x', sleep=lambda _s: None)
    assert open(tmp_path / 'app.env', encoding='utf-8').read() == 'X_ENABLED=false\n'


def test_the_module_sets_the_facts_and_check_mode_writes_nothing(tmp_path):
    args = dict(_params(tmp_path), features=['x'])
    failed, planned = run_module(feature_flag, args, check_mode=True)
    assert not failed and planned['changed'] is True and not os.path.exists(tmp_path / 'app.env')
    failed, result = run_module(feature_flag, args)
    assert not failed, result
    assert result['ansible_facts']['level1_feature_flag_results']['x']['reads'] is False
    failed, again = run_module(feature_flag, args)
    assert not failed and again['changed'] is False
    assert json.loads(json.dumps(again['ansible_facts']))['level1_feature_flag_result']['feature'] == 'x'
