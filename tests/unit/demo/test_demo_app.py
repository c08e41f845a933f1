"""The demo application: health reflects config, registry, known-bad values and the code; /flags honours app.env."""

import json
import os
import urllib.error
import urllib.request

import pytest

from lib.demo_app import APPCTL, run_appctl
from demoapp import audit, install, snapshot


def problems(app, check=None):
    found = snapshot.load(app.root).problems
    return [p for p in found if check is None or p['check'] == check]


def health(app):
    result = app.run('health')
    return result.returncode, json.loads(result.stdout)


# -- what the health check looks at (the loaded snapshot) -----------------------


def test_a_fresh_install_is_healthy_with_party_mode_off(app):
    snap = snapshot.load(app.root)
    assert snap.problems == []
    assert snap.flags == {'partyMode.enabled': False, 'darkMode.enabled': True}
    assert snap.version == '1.1.0'
    assert snap.release == os.path.join('releases', '2')


@pytest.mark.parametrize('text, fragment', [
    ('partyMode: [unclosed\n', 'not valid YAML'),
    ('- just\n- a list\n', 'mapping at the top level'),
    ('partyMode:\n  enabled: yes please\n  maxAgents: 4\n  maxRounds: 10\n', 'partyMode.enabled must be a boolean'),
    ('partyMode:\n  enabled: false\n  maxRounds: 10\n', 'partyMode.maxAgents must be an integer'),
    ('partyMode:\n  enabled: false\n  maxAgents: 0\n  maxRounds: 10\n', 'maxAgents must be at least 1'),
    ('partyMode:\n  enabled: false\n  maxAgents: 4\n  maxRounds: 10\n  rateLimit:\n    sessionsPerMinute: -5\n',
     'sessionsPerMinute must be a positive integer'),
    ('app:\n  name: x\n', 'required section partyMode is missing'),
])
def test_invalid_config_yaml_makes_the_app_unhealthy(app, text, fragment):
    app.write('config.yaml', text)
    messages = [p['message'] for p in problems(app, 'config')]
    assert any(fragment in message for message in messages), messages


def test_a_missing_config_yaml_makes_the_app_unhealthy(app):
    os.unlink(app.file('config.yaml'))
    assert 'is missing' in problems(app, 'config')[0]['message']


@pytest.mark.parametrize('text, fragment', [
    ('{"customModes": [', 'not valid JSON'),
    ('[]', 'customModes list'),
    ('{"customModes": [{"name": "No slug"}]}', 'no valid slug'),
    ('{"customModes": [{"slug": "a", "name": "A"}, {"slug": "a", "name": "B"}]}', "slug 'a' appears twice"),
    ('{"customModes": [{"slug": "a"}]}', 'has no name'),
])
def test_an_invalid_registry_makes_the_app_unhealthy(app, text, fragment):
    app.write('custom_modes.json', text)
    messages = [p['message'] for p in problems(app, 'registry')]
    assert any(fragment in message for message in messages), messages


def test_party_mode_enabled_is_a_known_bad_value(app):
    app.write('config.yaml', app.read('config.yaml').replace('enabled: false', 'enabled: true', 1))
    [problem] = problems(app)
    assert problem['check'] == 'known_bad'
    assert 'partyMode.enabled=true' in problem['message']


def test_known_bad_rules_come_from_the_apps_own_settings(app):
    settings = json.loads(app.read('settings.json'))
    settings['knownBad'] = [{'key': 'logging.level', 'equals': 'debug', 'reason': 'floods the disk'}]
    app.write('settings.json', json.dumps(settings))
    app.write('config.yaml', app.read('config.yaml').replace('enabled: false', 'enabled: true', 1))
    assert problems(app) == []
    app.write('config.yaml', app.read('config.yaml').replace('level: info', 'level: debug'))
    assert 'floods the disk' in problems(app, 'known_bad')[0]['message']


def test_a_release_marked_bad_makes_the_app_unhealthy(app):
    with open(app.file('current/BAD_RELEASE'), 'w') as handle:
        handle.write('crashes on start\n')
    assert problems(app, 'code')[0]['message'] == 'release 1.1.0 is marked bad: crashes on start'


def test_a_dangling_current_link_makes_the_app_unhealthy(app):
    os.unlink(app.file('current'))
    os.symlink('releases/9', app.file('current'))
    assert 'does not exist' in problems(app, 'code')[0]['message']


# -- feature flags and the override file ----------------------------------------


def test_the_override_file_takes_precedence_over_config_yaml(app):
    app.write('config.yaml', app.read('config.yaml').replace('enabled: false', 'enabled: true', 1))
    app.write('app.env', '# level 1 rollback\nexport PARTY_MODE_ENABLED=false\nDARK_MODE_ENABLED="0"\n')
    snap = snapshot.load(app.root)
    assert snap.flags == {'partyMode.enabled': False, 'darkMode.enabled': False}
    assert snap.sources['partyMode.enabled'] == 'app.env:PARTY_MODE_ENABLED'
    assert snap.problems == []


def test_a_non_boolean_override_is_a_problem_and_does_not_change_the_flag(app):
    app.write('app.env', 'PARTY_MODE_ENABLED=maybe\n')
    snap = snapshot.load(app.root)
    assert snap.flags['partyMode.enabled'] is False
    assert 'not a boolean' in snap.problems[0]['message']


def test_override_names_follow_the_feature_name():
    assert snapshot.override_name('partyMode') == 'PARTY_MODE_ENABLED'
    assert snapshot.override_name('darkMode') == 'DARK_MODE_ENABLED'
    assert snapshot.override_name('beta') == 'BETA_ENABLED'


# -- the running server -----------------------------------------------------------


def test_server_serves_health_and_flags_and_applies_changes_only_on_reload(app):
    assert app.run('start').returncode == 0
    assert health(app)[0] == 0

    app.write('config.yaml', 'partyMode: [unclosed\n')
    # Not applied yet: the server still answers from what it loaded.
    assert health(app)[0] == 0
    assert app.run('reload').returncode == 0
    code, document = health(app)
    assert code == 1
    assert document['status'] == 'unhealthy'
    assert document['problems'][0]['check'] == 'config'


def test_flags_endpoint_honours_the_override_file_after_reload(app):
    app.write('config.yaml', app.read('config.yaml').replace('enabled: false', 'enabled: true', 1))
    assert app.run('start').returncode == 0
    assert json.loads(app.run('flags').stdout)['flags']['partyMode.enabled'] is True
    assert health(app)[0] == 1

    app.write('app.env', 'PARTY_MODE_ENABLED=false\n')
    app.run('reload')
    flags = json.loads(app.run('flags').stdout)
    assert flags['flags']['partyMode.enabled'] is False
    assert flags['sources']['partyMode.enabled'] == 'app.env:PARTY_MODE_ENABLED'
    assert health(app)[0] == 0


def test_health_returns_http_503_with_reasons_when_unhealthy(app):
    app.write('custom_modes.json', '{')
    app.run('start')
    settings = json.loads(app.read('settings.json'))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen('http://127.0.0.1:%d/health' % settings['port'], timeout=5)
    assert caught.value.code == 503
    assert json.loads(caught.value.read())['problems'][0]['check'] == 'registry'


def test_auto_reload_setting_rereads_files_on_every_request(app):
    settings = json.loads(app.read('settings.json'))
    settings['autoReload'] = True
    app.write('settings.json', json.dumps(settings))
    app.run('start')
    app.write('custom_modes.json', '{')
    assert health(app)[0] == 1


def test_sessions_are_refused_while_party_mode_is_off_and_end_with_a_reason(app):
    app.run('start')
    assert app.run('session', 'start').returncode == 1
    app.write('app.env', 'PARTY_MODE_ENABLED=true\n')
    app.run('reload')
    started = json.loads(app.run('session', 'start').stdout)['sessionId']
    assert json.loads(app.run('sessions').stdout)['active'] == [started]
    ended = json.loads(app.run('sessions', 'end', '--reason', 'feature_disabled').stdout)['ended']
    assert ended == [started]
    assert audit.active_sessions(app.root) == []
    assert audit.events(app.root)[-1]['reason'] == 'feature_disabled'


def test_status_is_lsb_and_stop_is_idempotent(app):
    assert app.run('status').returncode == 3
    app.run('start')
    status = json.loads(app.run('status').stdout)
    assert status['running'] is True
    assert os.path.exists(app.file('run/appctl.pid'))
    assert app.run('stop').returncode == 0
    assert app.run('status').returncode == 3
    assert not os.path.exists(app.file('run/appctl.pid'))
    assert json.loads(app.run('stop').stdout) == {'stopped': False}


def test_health_reports_unreachable_when_the_server_is_not_running(app):
    result = app.run('health')
    assert result.returncode == 2
    assert json.loads(result.stdout)['status'] == 'unreachable'


def test_start_reports_the_servers_own_error_when_the_port_is_taken(app):
    app.run('start')
    other = app.file('../second')
    port = str(json.loads(app.read('settings.json'))['port'])
    assert run_appctl(app.appctl, 'install', other, '--port', port).returncode == 0
    try:
        result = run_appctl(app.appctl, '--root', other, 'start')
        assert result.returncode == 1
        assert 'Address already in use' in result.stderr
    finally:
        run_appctl(app.appctl, '--root', other, 'stop')


# -- code: git tags, releases, current ----------------------------------------------


def test_install_builds_a_tagged_git_history_with_the_same_commits_everywhere(app, tmp_path):
    tags = install.git(app.file('code'), 'tag', '--list').stdout.decode().split()
    assert set(tags) == {'v0.9.0', 'baseline-before-party-mode', 'v1.0.0', 'pre-party-mode-v1.0.0', 'v1.1.0'}
    other = tmp_path / 'other'
    install.install(str(other), port=1)
    for tag in ('v0.9.0', 'v1.1.0'):
        assert (install.git(app.file('code'), 'rev-parse', tag).stdout
                == install.git(str(other / 'code'), 'rev-parse', tag).stdout)


def test_deploy_exports_a_tag_as_the_next_release_and_switches_current(app):
    result = app.run('deploy', 'baseline-before-party-mode')
    assert result.returncode == 0, result.stderr
    assert os.readlink(app.file('current')) == os.path.join('releases', '3')
    assert app.read('current/VERSION') == '0.9.0\n'
    assert not os.path.exists(app.file('current/lib/party-mode'))
    assert app.read('current/REVISION').split()[1] == 'baseline-before-party-mode'


def test_deploy_refuses_an_unknown_ref_and_keeps_current(app):
    result = app.run('deploy', 'v9.9.9')
    assert result.returncode == 1
    assert 'not a commit' in result.stderr
    assert os.readlink(app.file('current')) == os.path.join('releases', '2')


def test_selftest_fails_for_a_release_marked_bad(app):
    assert app.run('selftest').returncode == 0
    with open(app.file('current/BAD_RELEASE'), 'w') as handle:
        handle.write('broken\n')
    result = app.run('selftest')
    assert result.returncode == 1
    assert 'marked bad: broken' in result.stderr


def test_install_refuses_an_existing_app_without_force(app):
    result = run_appctl(app.appctl, 'install', app.root)
    assert result.returncode == 1
    assert 'already holds the demo app' in result.stderr
    app.write('config.yaml', 'broken: [\n')
    assert run_appctl(APPCTL, 'install', app.root, '--force').returncode == 0
    assert problems(app) == []


def test_install_refuses_to_reinstall_with_the_copy_inside_the_root(app):
    result = run_appctl(app.appctl, 'install', app.root, '--force')
    assert result.returncode == 1
    assert 'from the source checkout' in result.stderr
    assert problems(app) == []


def test_check_validates_files_on_disk_without_a_server(app):
    assert app.run('check').returncode == 0
    app.write('config.yaml', 'partyMode: [\n')
    result = app.run('check')
    assert result.returncode == 1
    assert json.loads(result.stdout)['problems'][0]['check'] == 'config'
