"""The notification (plugin_utils/_notify.py): the message data, the role's templates, files and webhook post."""

import datetime
import json

import pytest

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify

NOW = datetime.datetime(2026, 11, 21, 23, 24, tzinfo=datetime.timezone.utc)
RUN = {'run_id': '20261121T231500Z-3fa2c1', 'operation': 'rollback_level2', 'level': 2, 'outcome': 'failed',
       'checkpoint': 'run-20261121T231500Z-3fa2c1', 'started': '2026-11-21T23:15:02Z',
       'hosts': {'web1': {}, 'web2': {}, 'web3': {}}, 'succeeded_hosts': [], 'failed_hosts': ['web2'],
       'stopped_hosts': ['web1', 'web3'], 'restored_hosts': ['web1', 'web2', 'web3']}


@pytest.mark.parametrize('outcome, status', [
    ('success', 'complete'), ('failed', 'failed'), ('partial', 'failed'), ('aborted', 'failed'), ('', 'in_progress'), (None, 'in_progress')])
def test_status_follows_the_runs_outcome(outcome, status):
    assert _notify.effective_status({'outcome': outcome}) == status


def test_a_given_status_wins_over_the_outcome():
    assert _notify.effective_status({'outcome': 'success'}, 'started') == 'started'


def test_context_holds_the_run_the_levels_words_and_the_times():
    context = _notify.message_context(RUN, now=NOW)
    levels, words = _notify.role_vars()
    assert context['status'] == 'failed' and context['status_word'] == words['failed']
    assert context['title'] == levels[2]['title'] and context['severity'] == 'INFO'
    assert context['reason'] == levels[2]['reason']
    assert context['incident_id'] == 'INC-20261121-20261121T231500Z-3fa2c1'
    assert context['hosts'] == ['web1', 'web2', 'web3']
    assert context['started'] == '2026-11-21 23:15:02' and context['now'] == '2026-11-21 23:24:00'
    assert context['finished'] == context['now'], 'a run without an end time ends when it is told'
    assert context['next_update'] == '23:54'


def test_a_failed_run_of_level_3_or_more_is_critical():
    assert _notify.message_context(dict(RUN, level=3), now=NOW)['severity'] == 'CRITICAL'
    assert _notify.message_context(dict(RUN, level=3, outcome='success'), now=NOW)['severity'] == 'WARNING'


def test_an_unknown_level_is_told_as_an_operation_and_given_words_win():
    context = _notify.message_context(dict(RUN, level=7), reason='a test', incident_id='INC-1', source='backup x',
                                      next_update_minutes=5, now=NOW)
    assert context['level'] == 0 and context['title'] == 'Operation'
    assert (context['reason'], context['incident_id'], context['source']) == ('a test', 'INC-1', 'backup x')
    assert context['next_update'] == '23:29'


def test_a_run_without_a_start_started_now():
    assert _notify.message_context({'level': 1}, now=NOW)['started'] == '2026-11-21 23:24:00'


def test_a_failure_asks_for_the_failure_action_and_says_where_each_host_failed():
    run = dict(RUN, level=1, hosts={'web1': {'failure': {'phase': 'verify', 'stopped_by_fleet': True}},
                                    'web2': {'failure': {'phase': 'verify'}}, 'web3': {}})
    context = _notify.message_context(run, now=NOW)
    levels = _notify.role_vars()[0]
    assert context['action'] == levels[1]['failed_action'] != levels[1]['action']
    assert context['failed_phases'] == {'web2': 'verify', 'web1': 'verify', 'web3': 'unknown'}
    assert context['verify_failed_hosts'] == ['web2'] and context['action_failed_hosts'] == []
    assert not context['failed_in_verify'], 'web3 has no recorded phase: not known to have passed the action'
    run['hosts']['web3'] = {'failure': {'phase': 'verify', 'stopped_by_fleet': True}}
    assert _notify.message_context(run, now=NOW)['failed_in_verify']


@pytest.mark.parametrize('level', [0, 1, 2, 3, 4])
def test_the_roles_templates_render_for_every_level(level):
    context = _notify.message_context(dict(RUN, level=level), now=NOW)
    internal, user = (_notify.render(_notify.TEMPLATES + '/' + name, context) for name in _notify.template_names(context))
    assert internal.startswith(context['severity'])
    assert 'Hosts: 3 (0 done, 1 failed: web2, 2 stopped by the fleet: web1, web3)' in internal
    assert RUN['run_id'] not in user and user == user.strip()


def test_files_are_the_two_messages_and_the_json_document_each_ending_in_a_newline():
    context = _notify.message_context(RUN, now=NOW)
    document = _notify.message_document(context, 'internal text', 'user text')
    assert sorted(document) == ['failed_hosts', 'incident_id', 'internal', 'level', 'run_id', 'severity', 'status',
                                'stopped_hosts', 'user']
    files = _notify.message_files('/srv/notes', context, 'internal text', 'user text', document)
    assert [path for path, text in files] == ['/srv/notes/notify-failed-internal.txt',
                                              '/srv/notes/notify-failed-user.txt', '/srv/notes/notify-failed.json']
    assert files[0][1] == 'internal text\n' and json.loads(files[2][1]) == document


def test_the_webhook_token_goes_in_a_bearer_header_only_when_given():
    body, headers = _notify.webhook_request({'status': 'failed'}, 's3cr3t')
    assert json.loads(body) == {'status': 'failed'} and headers['Authorization'] == 'Bearer s3cr3t'
    assert 'Authorization' not in _notify.webhook_request({}, '')[1]


ENV = {_notify.URL_ENV: 'https://hooks.example.com/rollback', _notify.TOKEN_ENV: 'from-the-credential'}


@pytest.mark.parametrize('url, token, expected', [
    ('', '', ('https://hooks.example.com/rollback', 'from-the-credential')),
    ('https://hooks.example.com/rollback', '', ('https://hooks.example.com/rollback', 'from-the-credential')),
    ('', 'given', ('https://hooks.example.com/rollback', 'given')),
    ('https://other.example.com/', 'given', ('https://other.example.com/', 'given')),
])
def test_the_webhook_options_given_win_over_the_controller_environment(url, token, expected):
    assert _notify.webhook_target(url, token, ENV) == expected


def test_the_environment_token_is_never_sent_to_another_url():
    assert _notify.webhook_target('https://other.example.com/', '', ENV) == ('https://other.example.com/', '')
    assert _notify.webhook_target('https://other.example.com/', '', {_notify.TOKEN_ENV: 'loose'}) == \
        ('https://other.example.com/', '')


def test_without_options_or_environment_nothing_is_posted():
    assert _notify.webhook_target('', '', {}) == ('', '')
    assert _notify.webhook_target('', '', {_notify.TOKEN_ENV: 'loose'}) == ('', '')


def test_notice_options_get_fleet_notifys_defaults_and_wrong_ones_are_refused():
    options = _notify.options({'dir': '/srv/notes', 'next_update_minutes': '15'})
    assert options['dir'] == '/srv/notes' and options['next_update_minutes'] == 15
    assert options['status'] == '' and options['webhook_required'] is False
    with pytest.raises(Exception, match='notify: .*status'):
        _notify.options({'status': 'done'})
