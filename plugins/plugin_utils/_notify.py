# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The notification of a run: what the messages say, rendered from the notify role's templates.

Plain functions over the run's summary (the ``lastgood_fleet`` fact).  What each level and status is
called lives once, in roles/notify/vars/main.yml; the messages are the role's templates
(roles/notify/templates/{internal,user}_level<N>.txt.j2), rendered with Jinja2 as Ansible renders them.
"""

from __future__ import annotations

import datetime
import json
import os
from urllib.error import HTTPError

import jinja2
import yaml

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.urls import open_url

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic

ROLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'roles', 'notify')
TEMPLATES = os.path.join(ROLE, 'templates')
STATUSES = ('started', 'in_progress', 'complete', 'failed')
POSTED = (200, 201, 202, 204)
# What the AWX credential type "Notification webhook" (awx/vars/notifications.yml) injects into a job's
# environment: environment variables, unlike extra variables, are not shown in the job's details.
URL_ENV = 'LASTGOOD_WEBHOOK_URL'
TOKEN_ENV = 'LASTGOOD_WEBHOOK_TOKEN'

# What a notice takes besides the run: lastgood.rollback.fleet_notify's options, and fleet_report's notify.
OPTIONS = {
    'status': {'type': 'str', 'default': '', 'choices': [''] + list(STATUSES)},
    'reason': {'type': 'str', 'default': ''},
    'source': {'type': 'str', 'default': ''},
    'incident_id': {'type': 'str', 'default': ''},
    'next_update_minutes': {'type': 'int', 'default': 30},
    'dir': {'type': 'path', 'default': '~/.lastgood/notifications'},
    'internal_template': {'type': 'str', 'default': ''},
    'user_template': {'type': 'str', 'default': ''},
    'webhook_url': {'type': 'str', 'default': '', 'no_log': True},
    'webhook_token': {'type': 'str', 'default': '', 'no_log': True},
    'webhook_timeout': {'type': 'int', 'default': 10},
    'webhook_validate_certs': {'type': 'bool', 'default': True},
    'webhook_required': {'type': 'bool', 'default': False},
}


def role_vars(role=ROLE):
    """``(levels, status_words)``: notify_levels and notify_status_words of the role's vars/main.yml."""
    with open(os.path.join(role, 'vars', 'main.yml'), encoding='utf-8') as handle:
        data = yaml.safe_load(handle)
    return data['notify_levels'], data['notify_status_words']


def effective_status(run, status=''):
    """The status the messages announce: ``status``, else derived from the run's outcome."""
    if status:
        return status
    outcome = (run or {}).get('outcome') or ''
    if outcome == 'success':
        return 'complete'
    # an aborted run did not do what it was for: its hosts are back where it started
    return 'failed' if outcome in ('failed', 'partial', 'aborted') else 'in_progress'


def _level(run, levels):
    try:
        level = int((run or {}).get('level') or 0)
    except (TypeError, ValueError):
        return 0
    return level if level in levels else 0


CLOCK = '%Y-%m-%d %H:%M:%S'


def _clock(iso_time):
    """``%Y-%m-%dT%H:%M:%SZ`` as the messages write a time, ``%Y-%m-%d %H:%M:%S`` (a run of less than a
    minute starts and ends at different times); other text unchanged."""
    try:
        return datetime.datetime.strptime(iso_time, '%Y-%m-%dT%H:%M:%SZ').strftime(CLOCK)
    except (TypeError, ValueError):
        return iso_time


def failed_phases(run):
    """``{host: phase}``: where the run failed on each failed or stopped host (``'unknown'`` when not recorded)."""
    hosts = run.get('hosts') if isinstance(run.get('hosts'), dict) else {}
    names = list(run.get('failed_hosts') or []) + list(run.get('stopped_hosts') or [])
    return dict((name, ((hosts.get(name) or {}).get('failure') or {}).get('phase') or 'unknown') for name in names)


def message_context(run, status='', reason='', source='', incident_id='', next_update_minutes=30, now=None,
                    levels=None, status_words=None):
    """What the templates see as ``n``: the run, its level's words and the status, at ``now`` (UTC)."""
    if levels is None or status_words is None:
        levels, status_words = role_vars()
    run = run or {}
    now = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    level = _level(run, levels)
    described = levels[level]
    status = effective_status(run, status)
    phases = failed_phases(run)
    return {
        'run_id': run.get('run_id') or '',
        'operation': run.get('operation') or 'run',
        'level': level,
        'status': status,
        'status_word': status_words[status],
        'title': described['title'],
        'severity': 'CRITICAL' if status == 'failed' and level >= 3 else described['severity'],
        'reason': reason or described['reason'],
        'impact': described['impact'],
        'duration': described['duration'],
        # On a failure, what people have to do now; otherwise what the level asks of them.
        'action': described['failed_action'] if status == 'failed' else described['action'],
        'source': source,
        'incident_id': incident_id or 'INC-%s-%s' % (now.strftime('%Y%m%d'), run.get('run_id') or 'run'),
        'checkpoint': run.get('checkpoint') or '',
        'hosts': list(run.get('hosts') or {}),
        'succeeded_hosts': list(run.get('succeeded_hosts') or []),
        'failed_hosts': list(run.get('failed_hosts') or []),
        'stopped_hosts': list(run.get('stopped_hosts') or []),
        'restored_hosts': list(run.get('restored_hosts') or []),
        'failed_phases': phases,
        # The failed hosts that failed only in verification (the action went through there), and the others.
        'verify_failed_hosts': [name for name in run.get('failed_hosts') or [] if phases.get(name) == 'verify'],
        'action_failed_hosts': [name for name in run.get('failed_hosts') or [] if phases.get(name) != 'verify'],
        # The run failed only in verification: the action itself went through on every host.
        'failed_in_verify': bool(phases) and all(phase == 'verify' for phase in phases.values()),
        'started': _clock(run.get('started')) or now.strftime(CLOCK),
        'finished': _clock(run.get('finished')) or now.strftime(CLOCK),
        'now': now.strftime(CLOCK),
        'next_update': (now + datetime.timedelta(minutes=int(next_update_minutes))).strftime('%H:%M'),
    }


def template_names(context):
    """The role's templates for the context's level: ``(internal, user)``."""
    return 'internal_level%d.txt.j2' % context['level'], 'user_level%d.txt.j2' % context['level']


def render(path, context):
    """The message the template at ``path`` makes of ``context``, trimmed."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.dirname(path)), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    return env.get_template(os.path.basename(path)).render(n=context).strip()


def message_document(context, internal, user):
    """The JSON document written beside the messages and posted to the webhook."""
    keys = ('run_id', 'incident_id', 'level', 'status', 'severity', 'failed_hosts', 'stopped_hosts')
    document = dict((key, context[key]) for key in keys)
    document.update(internal=internal, user=user)
    return document


def message_files(directory, context, internal, user, document):
    """``[(path, text)]`` of the three files, in the order the role always wrote them."""
    base = os.path.join(directory, 'notify-%s' % context['status'])
    return [(base + '-internal.txt', internal + '\n'), (base + '-user.txt', user + '\n'),
            (base + '.json', json.dumps(document, indent=4, sort_keys=True, separators=(',', ': ')) + '\n')]


def webhook_target(url, token, environ):
    """``(url, token)`` to post to: the options given, else the controller's environment.

    An empty ``url`` is ``environ``'s LASTGOOD_WEBHOOK_URL.  An empty ``token`` is its LASTGOOD_WEBHOOK_TOKEN, but
    only for a post to that same URL: the token of the credential goes to the credential's endpoint and nowhere
    else.
    """
    env_url = environ.get(URL_ENV, '')
    url = url or env_url
    if not token and url and url == env_url:
        token = environ.get(TOKEN_ENV, '')
    return url, token


def webhook_request(document, token=''):
    """``(body, headers)`` of the webhook post; the token goes in an Authorization: Bearer header."""
    headers = {'Content-Type': 'application/json'}
    if token:
        headers['Authorization'] = 'Bearer ' + token
    return json.dumps(document), headers


def post(url, token, document, timeout, validate_certs):
    """The HTTP status of posting ``document`` to ``url``, or None when nothing answered.

    Nothing of the URL or the token goes into what is returned: both are secrets.
    """
    body, headers = webhook_request(document, token)
    try:
        with open_url(url, data=body, headers=headers, method='POST', timeout=timeout,
                      validate_certs=validate_certs) as response:
            return response.status
    except HTTPError as exc:
        return exc.code
    except Exception:  # pylint: disable=broad-except  # any failure to reach it is "not posted"
        return None


def options(given):
    """``given`` (a dict of OPTIONS) checked and completed with their defaults, as the fleet_notify action's own
    options are; AnsibleActionFail names what is wrong."""
    validated = ArgumentSpecValidator(OPTIONS).validate(given or {})
    if validated.error_messages:
        raise AnsibleActionFail('notify: %s' % '; '.join(validated.error_messages))
    return validated.validated_parameters


def template_finder(action):
    """``find(name, default)`` for ``action``: the template to render, ``name`` found as the template action
    finds one, else the notify role's own (``default`` when no name is given)."""
    def find(name, default):
        if not name:
            return os.path.join(TEMPLATES, default)
        try:
            return action._find_needle('templates', name)  # pylint: disable=protected-access
        except AnsibleError:
            return os.path.join(TEMPLATES, name)
    return find


def send(run, args, find_template, check_mode=False):
    """Tell people about ``run``: render the messages, write them to ``args['dir']`` and post them.

    ``args`` holds OPTIONS; ``find_template(name, default)`` is the path of the template to render.
    Returns ``(result, failure)``: the keys an action's result takes (``msg``, ``ansible_facts``,
    ``ansible_stats``, ``warnings``) and the failure message when a required webhook did not take it.
    """
    context = message_context(run, args['status'], args['reason'], args['source'], args['incident_id'],
                              args['next_update_minutes'])
    internal_name, user_name = template_names(context)
    internal = render(find_template(args['internal_template'], internal_name), context)
    user = render(find_template(args['user_template'], user_name), context)
    document = message_document(context, internal, user)
    directory = os.path.expanduser(args['dir'])
    files = message_files(directory, context, internal, user, document)
    if not check_mode:
        _fsatomic.makedirs_durable(directory, mode=0o750)
        for path, text in files:
            _fsatomic.atomic_write_text(path, text, mode=0o640)
    # The controller's environment: where AWX injects the webhook credential (webhook_target).
    url, token = webhook_target(args['webhook_url'], args['webhook_token'], os.environ)
    attempted = bool(url) and not check_mode
    status = post(url, token, document, args['webhook_timeout'], args['webhook_validate_certs']) if attempted else None
    posted = status in POSTED
    answer = 'none: nothing answered' if status is None else status
    notify_result = {'status': context['status'], 'internal': internal, 'user': user,
                     'files': [path for path, dummy_text in files],
                     'webhook': {'posted': posted, 'status': status, 'attempted': attempted}}
    result = {
        'msg': '%s: %s' % (context['status'], internal.splitlines()[0] if internal else ''),
        'ansible_facts': {'notify_context': context, 'notify_message': document,
                          'notify_files': notify_result['files'], 'notify_result': notify_result},
        'ansible_stats': {'data': {'lastgood_notify': {'status': context['status'], 'files': notify_result['files'],
                                                       'webhook_posted': posted}},
                          'per_host': False, 'aggregate': False},
    }
    failure = None
    if attempted and not posted:
        if args['webhook_required']:
            failure = ('The notification webhook did not accept the message (HTTP status %s); webhook_required is '
                       'set.  The messages are in %s.' % (answer, args['dir']))
        else:
            result['warnings'] = ['The notification webhook did not accept the message (HTTP status %s); the '
                                  'messages are in %s.  Tell people by hand.' % (answer, args['dir'])]
    return result, failure
