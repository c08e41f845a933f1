"""The notify role's message templates: every level and status renders, and says what it must."""

import datetime
import os

import pytest
import yaml

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, 'roles', 'notify')
LEVELS = (0, 1, 2, 3, 4)
STATUSES = ('started', 'in_progress', 'complete', 'failed')
NOW = datetime.datetime(2026, 11, 21, 23, 24, tzinfo=datetime.timezone.utc)


def role_vars():
    with open(os.path.join(ROLE, 'vars', 'main.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def message_data(level, status, failed_hosts=(), stopped_hosts=()):
    """The data lastgood.rollback.fleet_notify builds (notify_context), for one level and status."""
    hosts = ('web1', 'web2', 'web3')
    run = {'run_id': '20261121T231500Z-3fa2c1', 'operation': 'rollback_level%d' % level, 'level': level,
           'checkpoint': 'run-20261121T231500Z-3fa2c1', 'started': '2026-11-21T23:15:00Z',
           'hosts': dict((host, {}) for host in hosts),
           'succeeded_hosts': [h for h in hosts if h not in tuple(failed_hosts) + tuple(stopped_hosts)],
           'failed_hosts': list(failed_hosts), 'stopped_hosts': list(stopped_hosts),
           'restored_hosts': list(failed_hosts) + list(stopped_hosts)}
    return _notify.message_context(run, status, source='backup known-good', next_update_minutes=21, now=NOW)


def render(name, data):
    return _notify.render(os.path.join(ROLE, 'templates', name), data)


@pytest.mark.parametrize('level', LEVELS)
@pytest.mark.parametrize('status', STATUSES)
def test_both_messages_render_for_every_level_and_status(level, status):
    data = message_data(level, status)
    internal = render('internal_level%d.txt.j2' % level, data)
    user = render('user_level%d.txt.j2' % level, data)
    assert internal.startswith(data['severity'])
    assert data['run_id'] in internal
    assert user and data['run_id'] not in user, 'users are not told internal ids'


@pytest.mark.parametrize('level', (1, 2, 3, 4))
def test_internal_message_names_the_level_its_duration_and_the_failed_hosts(level):
    text = render('internal_level%d.txt.j2' % level, message_data(level, 'failed', failed_hosts=['web2']))
    assert 'Level %d' % level in text
    assert role_vars()['notify_levels'][level]['duration'] in text
    assert 'web2' in text


@pytest.mark.parametrize('level', LEVELS)
def test_internal_message_keeps_hosts_the_fleet_stopped_apart_from_the_one_that_failed(level):
    data = message_data(level, 'failed', failed_hosts=('web2',), stopped_hosts=('web1', 'web3'))
    text = render('internal_level%d.txt.j2' % level, data)
    assert 'Hosts: 3 (0 done, 1 failed: web2, 2 stopped by the fleet: web1, web3)' in text


@pytest.mark.parametrize('level', (2, 3))
def test_failed_internal_message_points_to_the_next_level(level):
    text = render('internal_level%d.txt.j2' % level, message_data(level, 'failed', failed_hosts=['web2']))
    assert 'Level %d' % (level + 1) in text


def test_in_progress_message_promises_the_next_update_and_a_finished_one_does_not():
    assert 'Next update: 23:45 UTC' in render('internal_level2.txt.j2', message_data(2, 'in_progress'))
    assert 'Next update' not in render('internal_level2.txt.j2', message_data(2, 'complete'))


def test_level4_user_message_gives_the_window():
    text = render('user_level4.txt.j2', message_data(4, 'complete'))
    assert 'Started: 2026-11-21 23:15 UTC' in text and 'Finished: 2026-11-21 23:24 UTC' in text
