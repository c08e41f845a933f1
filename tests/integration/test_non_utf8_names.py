"""Names that are not UTF-8, through ansible-playbook on localhost: the work done is reported as done.

ansible-core refuses a module result holding a string that is not valid UTF-8 and reports
the task FAILED; a playbook would then retry or rescue a restore that completed.  The
results name such files in the escaped form of docs/store.md ("Names that are not UTF-8"),
and ``paths`` takes that form back.
"""

import json
import os
import socket

import pytest

from lib import local_playbook, trees

pytestmark = pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

RAW = b'\xff\xfe.conf'
ESCAPED = '\\xff\\xfe.conf'
VALID = 'caf\u00e9.conf'


def run_task(tmp_path, task, module, options, *args, extra=None):
    """``(counts of the module's task, its result, ansible-playbook's output)``."""
    path = tmp_path / 'play.yml'
    path.write_text(local_playbook.module_play(task, task, module, options, 'result', ignore_errors=True))
    variables = {'app': str(tmp_path / 'app'), 'store': str(tmp_path / 'store'), 'out': str(tmp_path)}
    variables.update(extra or {})
    run, counts = local_playbook.run(path, variables, *args)
    output = run.stdout + run.stderr
    assert counts is not None, output
    assert 'Refusing to deserialize' not in output, output
    # the save task counts as ok; a failed module task is ignored, so it shows as failed in the result only
    return counts, json.loads((tmp_path / 'result.json').read_text()), output


def backup(tmp_path):
    counts, result, output = run_task(tmp_path, 'Back up the application', 'backup', '''
        paths: ["{{ app }}"]
        mark_lastgood: true
    ''')
    assert not result.get('failed') and counts['changed'] == 1, output
    return result


@pytest.fixture
def app(tmp_path):
    """``app/conf`` holding a name that is not UTF-8 and one in valid non-ASCII UTF-8, backed up as last known good."""
    conf = tmp_path / 'app' / 'conf'
    conf.mkdir(parents=True)
    with open(os.path.join(os.fsencode(conf), RAW), 'w', encoding='utf-8') as handle:
        handle.write('port: 8080\n')
    (conf / VALID).write_text('cache: on\n')
    backup(tmp_path)
    return tmp_path / 'app'


def raw(app):
    return os.path.join(os.fsencode(app / 'conf'), RAW)


def escaped(app):
    return str(app / 'conf') + '/' + ESCAPED


def break_app(app):
    with open(raw(app), 'w', encoding='utf-8') as handle:
        handle.write('port: 9999\n')
    (app / 'conf' / VALID).write_text('cache: off\n')
    return trees.tree_digest(str(app))


def changed_paths(result):
    return sorted(item['path'] for plan in result['plan'] for item in plan['changed'])


def test_restore_of_a_non_utf8_name_is_reported_changed_then_unchanged_then_undone(tmp_path, app):
    good = trees.tree_digest(str(app))
    broken = break_app(app)

    counts, result, output = run_task(tmp_path, 'Restore the last known good backup', 'restore', '')
    assert not result.get('failed') and counts['changed'] == 1, output
    assert trees.tree_digest(str(app)) == good
    assert result['paths'] == [{'path': str(app), 'state': 'restored', 'verified': True, 'method': 'swap'}]
    assert changed_paths(result) == sorted([escaped(app), str(app / 'conf' / VALID)])

    counts, result, output = run_task(tmp_path, 'Restore the last known good backup', 'restore', '')
    assert not result.get('failed') and counts['changed'] == 0, output

    counts, result, output = run_task(tmp_path, 'Put back what the restore replaced', 'restore', 'undo: true')
    assert not result.get('failed') and counts['changed'] == 1, output
    assert trees.tree_digest(str(app)) == broken


def test_check_mode_restore_with_diff_reports_the_plan_with_the_escaped_name(tmp_path, app):
    broken = break_app(app)
    counts, result, output = run_task(tmp_path, 'Show what the restore would change', 'restore', '', '--check', '--diff')
    assert not result.get('failed') and counts['changed'] == 1, output
    assert trees.tree_digest(str(app)) == broken
    assert result['paths'][0]['state'] == 'would be restored'
    assert changed_paths(result) == sorted([escaped(app), str(app / 'conf' / VALID)])
    assert ESCAPED in output and '-port: 9999' in output and '+port: 8080' in output


def test_backup_verify_against_live_names_the_drifted_non_utf8_file(tmp_path, app):
    break_app(app)
    counts, result, output = run_task(tmp_path, 'Compare the live tree with the backup', 'backup_verify', '''
        against: live
        fail_on_mismatch: false
    ''')
    assert not result.get('failed') and counts['changed'] == 0, output
    assert result['ok'] is False
    assert sorted(item['path'] for item in result['drift']['changed']) == sorted([escaped(app), str(app / 'conf' / VALID)])

    counts, result, output = run_task(tmp_path, 'Fail when the live tree drifted', 'backup_verify', 'against: live')
    assert result['failed'] and 'differ from backup' in result['msg'] and escaped(app) in result['msg'], output


def test_backup_lists_a_socket_with_a_non_utf8_name_in_special_files(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / VALID).write_text('cache: on\n')
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(os.fsencode(app), b'\xff.sock'))
        counts, result, output = run_task(tmp_path, 'Back up the application', 'backup', 'paths: ["{{ app }}"]')
        assert not result.get('failed') and counts['changed'] == 1, output
        assert result['special_files'] == [str(app) + '/\\xff.sock']
        counts, result, output = run_task(tmp_path, 'Back up the application', 'backup', 'paths: ["{{ app }}"]')
        assert not result.get('failed') and counts['changed'] == 0, output
    finally:
        sock.close()


def test_restore_takes_the_escaped_name_from_a_result_back_as_the_path(tmp_path, app):
    break_app(app)
    options = 'paths: ["{{ target }}"]'
    counts, result, output = run_task(tmp_path, 'Restore one file', 'restore', options, extra={'target': escaped(app)})
    assert not result.get('failed') and counts['changed'] == 1, output
    assert result['paths'][0]['path'] == escaped(app) and result['paths'][0]['state'] == 'restored'
    with open(raw(app), encoding='utf-8') as handle:
        assert handle.read() == 'port: 8080\n'
    assert (app / 'conf' / VALID).read_text() == 'cache: off\n', 'only the path given is restored'

    counts, result, output = run_task(tmp_path, 'Restore one file', 'restore', options, extra={'target': escaped(app)})
    assert not result.get('failed') and counts['changed'] == 0, output
