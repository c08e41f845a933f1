import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _config, _fsatomic, _manifest, _store
from lib import faults
from lib.trees import tree_digest

COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', '.collections')

YAML_TEXT = textwrap.dedent('''\
    # application settings
    partyMode:
      enabled: true    # the feature flag
      maxAgents: 4
      maxRounds: 10
      label: 'party time'
    teams:
      - alpha
      - beta
    ''')
JSON_TEXT = '{\n    "customModes": [\n        {"slug": "architect", "groups": ["read"]}\n    ],\n    "version": 3\n}\n'
SCHEMA = {'type': 'object', 'properties': {'version': {'type': 'integer'}}, 'required': ['version']}
ORIGINAL_MTIME_NS = 1700000000123456789


def _write(path, text, mode=0o640):
    with open(path, 'w') as handle:
        handle.write(text)
    os.chmod(path, mode)
    os.utime(path, ns=(ORIGINAL_MTIME_NS, ORIGINAL_MTIME_NS))
    return str(path)


@pytest.fixture
def yaml_file(tmp_path):
    return _write(tmp_path / 'config.yaml', YAML_TEXT)


@pytest.fixture
def json_file(tmp_path):
    return _write(tmp_path / 'custom_modes.json', JSON_TEXT)


def _backups(path):
    directory, base = os.path.split(path)
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(base + '.bak.'))


@pytest.mark.parametrize('text, keys', [
    ('partyMode.enabled', ['partyMode', 'enabled']),
    ('teams[0].name', ['teams', 0, 'name']),
    ('servers.1.port', ['servers', '1', 'port']),
    ('labels["app.kubernetes.io/name"]', ['labels', 'app.kubernetes.io/name']),
    ("labels['a.b'].c", ['labels', 'a.b', 'c']),
    ('[2]', [2]),
    ('a[-1]', ['a', -1]),
])
def test_key_paths_read_dots_indexes_and_quoted_keys(text, keys):
    assert _config.parse_key_path(text) == keys


@pytest.mark.parametrize('text', ['', 'a..b', 'a.', '.a', 'a[x]', 'a]b', 'a["b]'])
def test_malformed_key_paths_are_refused(text):
    with pytest.raises(_config.ConfigError):
        _config.parse_key_path(text)


def test_yaml_values_are_written_in_place_keeping_comments_order_and_quoting(yaml_file):
    result = _config.update(yaml_file, set_values={'partyMode.enabled': False, 'teams[1]': 'gamma',
                                                   'partyMode.label': "it's off"})
    assert result['method'] == 'line_edit' and result['changed'] is True
    assert open(yaml_file).read() == YAML_TEXT.replace('enabled: true', 'enabled: false').replace(
        '- beta', '- gamma').replace("'party time'", "'it''s off'")


@pytest.mark.parametrize('change', [
    {'set_values': {'partyMode.maxParticipants': 8}},
    {'set_values': {'partyMode.enabled': {'mode': 'off'}}},
    {'unset': ['partyMode.maxRounds']},
])
def test_yaml_changes_that_cannot_be_made_in_place_are_redumped_and_say_so(yaml_file, change):
    result = _config.update(yaml_file, **change)
    assert result['method'] == 'dump'
    text = open(yaml_file).read()
    assert '#' not in text and text.index('partyMode') < text.index('teams')


def test_a_block_scalar_is_redumped_rather_than_edited_in_place(tmp_path):
    path = _write(tmp_path / 'c.yaml', 'motd: |\n  line one\n  line two\nother: 1\n')
    result = _config.update(path, set_values={'motd': 'short'})
    assert result['method'] == 'dump'
    assert open(path).read() == 'motd: short\nother: 1\n'


def test_a_value_set_through_an_alias_changes_only_that_path(tmp_path):
    path = _write(tmp_path / 'c.yaml', 'defaults: &d\n  host: a\n  port: 1\nprod: *d\n')
    result = _config.update(path, set_values={'prod.host': 'b'})
    assert result['method'] == 'dump'
    assert open(path).read() == 'defaults:\n  host: a\n  port: 1\nprod:\n  host: b\n  port: 1\n'


def test_a_document_that_contains_itself_is_refused(tmp_path):
    path = _write(tmp_path / 'c.yaml', 'a: &x [*x]\n')
    with pytest.raises(_config.ConfigError, match='refers to itself'):
        _config.update(path, set_values={'b': 1})


def test_json_values_keep_key_order_and_indentation(json_file):
    result = _config.update(json_file, set_values={'customModes[0].groups[1]': 'edit', 'version': 4})
    assert result['method'] == 'dump'
    text = open(json_file).read()
    assert json.loads(text) == {'customModes': [{'slug': 'architect', 'groups': ['read', 'edit']}], 'version': 4}
    assert text.startswith('{\n    "customModes": [\n        {\n            "slug"') and text.endswith('}\n')


def test_unset_removes_keys_and_a_missing_key_changes_nothing(json_file):
    assert _config.update(json_file, unset=['missing.key'])['changed'] is False
    _config.update(json_file, unset=['customModes[0].groups'])
    assert json.load(open(json_file))['customModes'] == [{'slug': 'architect'}]


def test_content_as_text_is_written_verbatim_and_as_data_is_serialised(json_file, yaml_file):
    _config.update(yaml_file, content='# new\npartyMode: {enabled: false}\n')
    assert open(yaml_file).read() == '# new\npartyMode: {enabled: false}\n'
    _config.update(json_file, content={'version': 9})
    assert open(json_file).read() == '{\n    "version": 9\n}\n'


@pytest.mark.parametrize('fixture', ['yaml_file', 'json_file'])
def test_a_second_identical_update_changes_nothing_and_makes_no_backup(request, fixture):
    path = request.getfixturevalue(fixture)
    change = {'set_values': {'partyMode.enabled': False}} if fixture == 'yaml_file' else {'set_values': {'version': 4}}
    assert _config.update(path, **change)['changed'] is True
    digest = tree_digest(os.path.dirname(path))
    second = _config.update(path, **change)
    assert (second['changed'], second['method'], second['backup']) == (False, 'none', None)
    assert tree_digest(os.path.dirname(path)) == digest


def test_the_sibling_backup_holds_the_original_with_its_mode_and_mtime(yaml_file):
    result = _config.update(yaml_file, set_values={'partyMode.maxAgents': 2})
    assert result['backup'] == _backups(yaml_file)[0]
    assert os.path.basename(result['backup'])[len('config.yaml.bak.'):].isdigit()
    assert open(result['backup']).read() == YAML_TEXT
    st = os.stat(result['backup'])
    assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o640, ORIGINAL_MTIME_NS)
    assert os.stat(yaml_file).st_mode & 0o777 == 0o640


def test_backups_made_in_the_same_second_get_distinct_names(json_file):
    first = _config.update(json_file, set_values={'version': 4})['backup']
    second = _config.update(json_file, set_values={'version': 5})['backup']
    assert first != second and len(_backups(json_file)) == 2
    assert json.load(open(second))['version'] == 4


INVALID = [
    ('json', {'content': '{"version": 3,}'}, 'not valid JSON'),
    ('json', {'content': '{"a": 1, "a": 2}'}, 'duplicate key'),
    ('json', {'content': '{"version": NaN}'}, 'NaN'),
    ('json', {'set_values': {'version': 'three'}, 'schema': SCHEMA}, 'schema violation at version'),
    ('json', {'unset': ['version'], 'schema': SCHEMA}, "'version' is a required property"),
    ('json', {'set_values': {'customModes[5]': {}}}, 'out of range'),
    ('json', {'set_values': {'version.minor': 1}}, 'not a mapping or list'),
    ('json', {'set_values': {'a..b': 1}}, 'empty segment'),
    ('json', {'unset': ['version'], 'required_keys': ['version']}, 'required key version is missing'),
    ('json', {'set_values': {'version': 4}, 'validate_cmd': 'false %s'}, 'rejected the new content'),
    ('json', {'set_values': {'version': 4}, 'validate_cmd': 'true'}, 'must contain %s'),
    ('yaml', {'content': 'partyMode: [unclosed\n'}, 'not valid YAML'),
    ('yaml', {'content': 'a: 1\n---\nb: 2\n'}, 'not valid YAML'),
    ('yaml', {'set_values': {'partyMode.enabled': 'yes please'},
              'schema': {'properties': {'partyMode': {'properties': {'enabled': {'type': 'boolean'}}}}}},
     'schema violation at partyMode.enabled'),
    ('yaml', {'unset': ['partyMode.maxRounds'], 'required_keys': ['partyMode.enabled', 'partyMode.maxRounds']},
     'required key partyMode.maxRounds is missing'),
]


@pytest.mark.parametrize('fmt, change, message', INVALID)
def test_an_invalid_change_leaves_the_file_untouched_and_makes_no_backup(tmp_path, fmt, change, message):
    path = _write(tmp_path / ('config.' + fmt), YAML_TEXT if fmt == 'yaml' else JSON_TEXT)
    digest = tree_digest(str(tmp_path))
    with pytest.raises(_config.ConfigError) as raised:
        _config.update(path, **change)
    assert message in str(raised.value)
    assert 'nothing was changed and no backup was made' in str(raised.value)
    assert (raised.value.restored, raised.value.backup) == (None, None)
    assert tree_digest(str(tmp_path)) == digest


def test_a_current_file_that_does_not_parse_is_not_edited_by_values(tmp_path):
    path = _write(tmp_path / 'broken.json', '{"version": ')
    with pytest.raises(_config.ConfigError, match='current file .* is not valid JSON'):
        _config.update(path, set_values={'version': 1})
    assert _config.update(path, content='{"version": 1}\n')['changed'] is True


def test_a_schema_can_come_from_a_file_on_the_target(json_file, tmp_path):
    schema_path = tmp_path / 'schema.yaml'
    schema_path.write_text('type: object\nrequired: [version]\nproperties:\n  version: {type: integer}\n')
    with pytest.raises(_config.ConfigError, match='schema violation at version'):
        _config.update(json_file, set_values={'version': 'x'}, schema_path=str(schema_path))
    assert _config.update(json_file, set_values={'version': 4}, schema_path=str(schema_path))['changed'] is True


def test_the_validate_command_checks_a_copy_with_the_same_name_and_the_new_content(json_file):
    command = ('sh -c \'test "$(basename "$1")" = custom_modes.json && grep -q "\\"version\\": 4" "$1"\' sh %s')
    assert _config.update(json_file, set_values={'version': 4}, validate_cmd=command)['changed'] is True
    with pytest.raises(_config.ConfigError, match='rejected'):
        _config.update(json_file, set_values={'version': 5}, validate_cmd=command)
    assert json.load(open(json_file))['version'] == 4


@pytest.mark.parametrize('fixture', ['yaml_file', 'json_file'])
def test_check_mode_writes_nothing_and_returns_the_new_text(request, fixture, tmp_path):
    path = request.getfixturevalue(fixture)
    change = {'partyMode.enabled': False} if fixture == 'yaml_file' else {'version': 4}
    digest = tree_digest(str(tmp_path))
    result = _config.update(path, set_values=change, validate_cmd='test -s %s', check=True)
    assert result['changed'] is True and result['backup'] is None
    assert result['before'] != result['after'] and result['before'] == open(path).read()
    assert tree_digest(str(tmp_path)) == digest


def test_create_makes_a_missing_file_and_otherwise_a_missing_file_is_an_error(tmp_path):
    path = str(tmp_path / 'new.yaml')
    with pytest.raises(_config.ConfigError, match='does not exist'):
        _config.update(path, set_values={'a.b': 1})
    result = _config.update(path, set_values={'a.b': 1}, create=True)
    assert (result['changed'], result['backup']) == (True, None)
    assert open(path).read() == 'a:\n  b: 1\n' and os.stat(path).st_mode & 0o777 == 0o600


def test_a_symlink_is_followed_and_stays_a_symlink(json_file, tmp_path):
    link = tmp_path / 'link.json'
    link.symlink_to(json_file)
    result = _config.update(str(link), set_values={'version': 4})
    assert result['path'] == json_file and os.path.islink(str(link))
    assert json.load(open(json_file))['version'] == 4


@pytest.mark.parametrize('library, change', [
    ('yaml', {'set_values': {'partyMode.enabled': False}}),
    ('jsonschema', {'set_values': {'version': 4}, 'schema': SCHEMA}),
])
def test_a_missing_optional_library_is_reported_by_name(monkeypatch, yaml_file, json_file, library, change):
    monkeypatch.setitem(sys.modules, library, None)
    with pytest.raises(_config.MissingLibrary) as raised:
        _config.update(yaml_file if library == 'yaml' else json_file, **change)
    assert raised.value.library == {'yaml': 'PyYAML', 'jsonschema': 'jsonschema'}[library]
    assert 'import %s' % library in raised.value.trace


# ---- failures after the backup -------------------------------------------------------------------

CASES = {
    'yaml': ('config.yaml', YAML_TEXT, {'set_values': {'partyMode.enabled': False}}),
    'json': ('custom_modes.json', JSON_TEXT, {'set_values': {'version': 4}, 'schema': SCHEMA}),
}


def _reset(tmp_path, name, text):
    for entry in os.listdir(tmp_path):
        full = os.path.join(tmp_path, entry)
        shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
    return _write(tmp_path / name, text)


def _store_kwargs(tmp_path, backup):
    if backup == 'sibling':
        return {}
    return {'backup': 'store', 'backup_root': str(tmp_path / 'store'), 'set_name': 'cfg'}


ENGINE = [_config, _fsatomic, _store, _manifest]


@pytest.mark.parametrize('backup', ['sibling', 'store'])
@pytest.mark.parametrize('fmt', ['yaml', 'json'])
def test_a_transient_fault_at_any_step_leaves_the_original_or_the_new_file_and_restores_after_the_backup(tmp_path, fmt, backup):
    name, text, change = CASES[fmt]
    work = tmp_path / 'work'
    work.mkdir()
    path = _reset(work, name, text)
    original = tree_digest(path)
    kwargs = dict(change, **_store_kwargs(work, backup))
    _config.update(path, **kwargs)
    new_content = open(path, 'rb').read()
    restores = []

    def check(k, plan, error):
        where = 'fault %d (%s)' % (k, plan.fired_call)
        if error is None:
            assert open(path, 'rb').read() == new_content, where
        else:
            assert isinstance(error, _config.ConfigError), '%s escaped as %r' % (where, error)
            assert tree_digest(path) == original, '%s: %s' % (where, error)
            if error.backup is not None:
                assert error.restored is True, '%s: %s' % (where, error)
                assert 'restored: yes' in str(error)
                assert open(error.backup, 'rb').read() == text.encode()
                restores.append(k)
            else:
                assert error.restored is None
                assert not _backups(path), where
        assert not [p for p in os.listdir(work) if p.startswith(_fsatomic.TMP_PREFIX)], where
        _reset(work, name, text)

    _reset(work, name, text)
    points = faults.sweep(ENGINE, lambda: _config.update(path, **kwargs), check)
    assert points >= 15 and len(restores) >= 5


@pytest.mark.parametrize('backup', ['sibling', 'store'])
@pytest.mark.parametrize('fmt', ['yaml', 'json'])
def test_when_the_restore_fails_too_the_message_names_the_backup_to_restore_by_hand(tmp_path, fmt, backup):
    name, text, change = CASES[fmt]
    work = tmp_path / 'work'
    work.mkdir()
    path = _reset(work, name, text)
    kwargs = dict(change, **_store_kwargs(work, backup))
    failed_restores = []

    def check(k, plan, error):
        if error is not None and error.backup is not None:
            assert error.restored is False, 'fault %d: %s' % (k, error)
            assert 'restored: no' in str(error) and 'cp -p %s %s' % (error.backup, path) in str(error)
            assert open(error.backup, 'rb').read() == text.encode()
            if backup == 'store':
                assert error.backup.startswith(str(work / 'store' / 'cfg'))
            failed_restores.append(open(path, 'rb').read() != text.encode())
        elif error is not None:
            assert open(path, 'rb').read() == text.encode(), 'fault %d: %s' % (k, error)
        _reset(work, name, text)

    faults.sweep(ENGINE, lambda: _config.update(path, **kwargs), check, persistent=True)
    # some faults hit after the new file was in place, where a restore was really needed
    assert True in failed_restores and False in failed_restores


def test_a_failure_after_creating_a_new_file_removes_it_again(tmp_path):
    path = str(tmp_path / 'new.json')
    calls = faults.call_log([_config, _fsatomic], lambda: _config.update(path, content={'a': 1}, create=True))
    os.unlink(path)
    # the last fsync of the update is the one of the directory, after the rename
    plan = faults.FaultPlan(fail_at=calls.count('fsync'), only={'fsync'})
    with faults.inject([_config, _fsatomic], plan):
        with pytest.raises(_config.ConfigError) as raised:
            _config.update(path, content={'a': 1}, create=True)
    assert raised.value.restored is True and 'did not exist before and was removed' in str(raised.value)
    assert os.listdir(tmp_path) == []


FULL_DISK_SCRIPT = r'''
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.lastgood.rollback.plugins.module_utils import _config
mount, name, text = sys.argv[2], sys.argv[3], sys.argv[4]
subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount], check=True)
path = os.path.join(mount, name)
with open(path, 'w') as handle:
    handle.write(text)
filler = os.path.join(mount, 'filler')
fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b'\0' * 4096)
except OSError:
    pass
os.close(fd)
os.truncate(filler, os.path.getsize(filler) - 3 * 4096)
change = {'huge': 'x' * 200000}
key = 'padding' if name.endswith('.json') else 'partyMode.padding'
out = {'text_before': open(path).read()}
try:
    _config.update(path, set_values={key: change})
    out['error'] = None
except _config.ConfigError as exc:
    out.update(error=str(exc), restored=exc.restored, backup=exc.backup,
               backup_text=open(exc.backup).read() if exc.backup else None)
out['text_after'] = open(path).read()
out['leftovers'] = sorted(n for n in os.listdir(mount) if n.startswith('.lastgood-tmp-'))
print(json.dumps(out))
'''


@pytest.mark.root
@pytest.mark.parametrize('fmt', ['yaml', 'json'])
def test_a_full_filesystem_during_the_write_restores_the_original(tmp_path, fmt):
    if os.geteuid() != 0 or not shutil.which('unshare'):
        pytest.skip('needs root and unshare to mount a private tmpfs')
    name, text, _change = CASES[fmt]
    mount = tmp_path / 'mnt'
    mount.mkdir()
    proc = subprocess.run(['unshare', '-m', sys.executable, '-c', FULL_DISK_SCRIPT, os.path.abspath(COLLECTIONS),
                           str(mount), name, text], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out['error'] is not None and 'No space left on device' in out['error']
    assert out['restored'] is True and 'restored: yes' in out['error']
    assert out['text_after'] == out['text_before'] == text
    assert out['backup_text'] == text
    assert out['leftovers'] == []
    assert os.listdir(mount) == []


def test_temporary_files_of_an_interrupted_update_are_removed_by_the_next_one_and_others_kept(tmp_path):
    path = tmp_path / 'custom_modes.json'
    path.write_text('{"modes": []}\n')
    left_by_killed_write = tmp_path / (_fsatomic.TMP_PREFIX + 'custom_modes.json.0badc0de')
    left_by_killed_backup = tmp_path / (_fsatomic.TMP_PREFIX + 'custom_modes.json.bak.20261121231500.12345678')
    someone_elses = tmp_path / (_fsatomic.TMP_PREFIX + 'other.json.0badc0de')
    for leftover in (left_by_killed_write, left_by_killed_backup, someone_elses):
        leftover.write_text('partial')

    result = _config.update(str(path), set_values={'modes': ['a']})

    assert sorted(result['stale_temps_removed']) == sorted([left_by_killed_write.name, left_by_killed_backup.name])
    assert not left_by_killed_write.exists() and not left_by_killed_backup.exists()
    assert someone_elses.read_text() == 'partial'
    assert json.loads(path.read_text()) == {'modes': ['a']}


def test_check_mode_leaves_temporary_files_of_an_interrupted_update_alone(tmp_path):
    path = tmp_path / 'custom_modes.json'
    path.write_text('{"modes": []}\n')
    leftover = tmp_path / (_fsatomic.TMP_PREFIX + 'custom_modes.json.0badc0de')
    leftover.write_text('partial')
    _config.update(str(path), set_values={'modes': ['a']}, check=True)
    assert leftover.exists()
