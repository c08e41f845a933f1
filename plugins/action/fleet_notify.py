# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.fleet_notify: the internal and the user-facing messages about a run, once on the controller."""

from __future__ import annotations

import os
from urllib.error import HTTPError

from ansible.errors import AnsibleError
from ansible.module_utils.urls import open_url
from ansible.plugins.action import ActionBase

from ansible_collections.lastgood.rollback.plugins.module_utils import _fsatomic
from ansible_collections.lastgood.rollback.plugins.plugin_utils import _notify
from ansible_collections.lastgood.rollback.plugins.plugin_utils._vars import plain

ARGUMENT_SPEC = {
    'run': {'type': 'dict'},
    'status': {'type': 'str', 'default': '', 'choices': [''] + list(_notify.STATUSES)},
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


def post(url, token, document, timeout, validate_certs):
    """The HTTP status of posting ``document`` to ``url``, or None when nothing answered.

    Nothing of the URL or the token goes into what is returned: both are secrets.
    """
    body, headers = _notify.webhook_request(document, token)
    try:
        with open_url(url, data=body, headers=headers, method='POST', timeout=timeout,
                      validate_certs=validate_certs) as response:
            return response.status
    except HTTPError as exc:
        return exc.code
    except Exception:  # pylint: disable=broad-except  # any failure to reach it is "not posted"
        return None


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def _template(self, name, default):
        """The template to render: ``name`` found as the template action finds one, else the role's own."""
        if not name:
            return os.path.join(_notify.TEMPLATES, default)
        try:
            return self._find_needle('templates', name)
        except AnsibleError:
            return os.path.join(_notify.TEMPLATES, name)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        run = plain(args['run'] if args['run'] is not None else self._templar.template(task_vars.get('lastgood_fleet')))
        context = _notify.message_context(run, args['status'], args['reason'], args['source'], args['incident_id'],
                                          args['next_update_minutes'])
        internal_name, user_name = _notify.template_names(context)
        internal = _notify.render(self._template(args['internal_template'], internal_name), context)
        user = _notify.render(self._template(args['user_template'], user_name), context)
        document = _notify.message_document(context, internal, user)
        directory = os.path.expanduser(args['dir'])
        files = _notify.message_files(directory, context, internal, user, document)
        if not self._task.check_mode:
            _fsatomic.makedirs_durable(directory, mode=0o750)
            for path, text in files:
                _fsatomic.atomic_write_text(path, text, mode=0o640)
        # The controller's environment: where AWX injects the webhook credential (plugin_utils/_notify.py).
        url, token = _notify.webhook_target(args['webhook_url'], args['webhook_token'], os.environ)
        attempted = bool(url) and not self._task.check_mode
        status = post(url, token, document, args['webhook_timeout'], args['webhook_validate_certs']) if attempted else None
        posted = status in _notify.POSTED
        answer = 'none: nothing answered' if status is None else status
        notify_result = {'status': context['status'], 'internal': internal, 'user': user,
                         'files': [path for path, dummy_text in files],
                         'webhook': {'posted': posted, 'status': status, 'attempted': attempted}}
        result.update(
            changed=not self._task.check_mode,
            msg='%s: %s' % (context['status'], internal.splitlines()[0] if internal else ''),
            ansible_facts={'notify_context': context, 'notify_message': document,
                           'notify_files': notify_result['files'], 'notify_result': notify_result},
            ansible_stats={'data': {'lastgood_notify': {'status': context['status'], 'files': notify_result['files'],
                                                        'webhook_posted': posted}},
                           'per_host': False, 'aggregate': False},
        )
        if attempted and not posted:
            if args['webhook_required']:
                result.update(failed=True, msg='The notification webhook did not accept the message (HTTP status %s); '
                              'webhook_required is set.  The messages are in %s.' % (answer, args['dir']))
            else:
                result['warnings'] = ['The notification webhook did not accept the message (HTTP status %s); the '
                                      'messages are in %s.  Tell people by hand.' % (answer, args['dir'])]
        return result
