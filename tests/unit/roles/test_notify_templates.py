"""The notify role's message templates: every level, internal and user-facing, at the start, on success and
on failure, rendered for fixed inputs and compared whole with golden/notify_level<N>.txt."""

import datetime
import os

import pytest

from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify

from lib.golden import assert_golden

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEMPLATES = os.path.join(ROOT, 'roles', 'notify', 'templates')
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
HOSTS = ('web1', 'web2', 'web3')
STARTED = datetime.datetime(2026, 11, 21, 23, 15, 2, tzinfo=datetime.timezone.utc)
ENDED = datetime.datetime(2026, 11, 21, 23, 15, 41, tzinfo=datetime.timezone.utc)


def operation(level):
    """What runs at the level: a rollback, or (level 0) a staged deployment."""
    return 'rollback_level%d' % level if level else 'deploy_staged'


def run_of(level, outcome='', failed_in=None):
    """A run on web1-web3; ``failed_in``: web2 failed in that phase and the fleet stopped the others there."""
    run = {'run_id': '20261121T231500Z-3fa2c1', 'operation': operation(level), 'level': level,
           'checkpoint': 'run-20261121T231500Z-3fa2c1', 'started': '2026-11-21T23:15:02Z',
           'finished': '2026-11-21T23:15:40Z', 'outcome': outcome,
           'hosts': dict((host, {}) for host in HOSTS), 'succeeded_hosts': list(HOSTS), 'failed_hosts': [],
           'stopped_hosts': [], 'restored_hosts': []}
    if failed_in:
        run['hosts'] = dict((host, {'failure': {'phase': failed_in, 'stopped_by_fleet': host != 'web2'}})
                            for host in HOSTS)
        run.update(succeeded_hosts=[], failed_hosts=['web2'], stopped_hosts=['web1', 'web3'],
                   restored_hosts=['web1', 'web2', 'web3'])
    return run


def cases(level):
    """``[(title, context)]``: the start notice (what run_start.yml sends), then the end of a run that succeeded,
    failed in its action, and failed only in verification."""
    start = {'run_id': '20261121T231500Z-3fa2c1', 'operation': operation(level), 'level': level,
             'checkpoint': 'run-20261121T231500Z-3fa2c1', 'hosts': list(HOSTS)}
    action = {1: 'level1_feature_flag', 2: 'level2_config', 3: 'level3_code', 4: 'level4_full_restore'}.get(level, 'checkpoint')
    return [
        ('started', _notify.message_context(start, 'started', next_update_minutes=30, now=STARTED)),
        ('complete', _notify.message_context(run_of(level, 'success'), now=ENDED)),
        ('failed in %s' % action, _notify.message_context(run_of(level, 'failed', action), source='backup known-good',
                                                          now=ENDED)),
        ('failed in verify', _notify.message_context(run_of(level, 'failed', 'verify'), now=ENDED)),
    ]


def rendering(level):
    parts = []
    for title, context in cases(level):
        internal, user = (_notify.render(os.path.join(TEMPLATES, name), context)
                          for name in _notify.template_names(context))
        parts.append('=== %s: internal ===\n%s\n\n=== %s: user ===\n%s\n' % (title, internal, title, user))
    return '\n'.join(parts)


@pytest.mark.parametrize('level', (0, 1, 2, 3, 4))
def test_every_message_of_the_level_reads_exactly_as_reviewed(level):
    assert_golden(os.path.join(GOLDEN, 'notify_level%d.txt' % level), rendering(level))


def test_users_are_never_told_internal_ids():
    for level in (0, 1, 2, 3, 4):
        for dummy_title, context in cases(level):
            user = _notify.render(os.path.join(TEMPLATES, _notify.template_names(context)[1]), context)
            assert context['run_id'] not in user and context['incident_id'] not in user
