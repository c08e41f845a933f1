#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: audit_log
short_description: Append to, verify and query a tamper-evident audit log
version_added: 0.1.0
description:
  - Records who did what and when as JSON lines, one event per line, each line carrying
    the SHA-256 of the line before it, so that an edited, inserted or removed line breaks the chain.
  - O(operation=append) writes one event (C(ts) in UTC, C(run_id), C(host), C(user), C(level),
    C(event), C(detail)) with C(O_APPEND) and C(fsync), under an exclusive C(flock) so that
    concurrent writers never break the chain.
  - Before every append the live file is checked (each line a record chained to the one before it,
    the first to the rotated files, the head file among them).  A live file that fails is never extended;
    it is moved aside read-only with its head as C(<path>.corrupt-<UTC time>), and a new live file starts
    with an C(audit_log_quarantined) record that chains to the rotated files and pins the quarantined file
    by its SHA-256 (RV(quarantined), and a warning).  A break inside a rotated file is reported by verify only.
  - O(operation=verify) proves the chain across the live file and its rotated files and
    reports the first broken line.
  - O(operation=query) returns the events matching a run ID, event names, levels and a time window.
  - O(operation=active_sessions) lists sessions started (C(session_start)) and not ended
    (C(session_end)), matched by C(detail.session_id).
  - The line format, the rotation scheme and how to verify a log by hand are described in
    C(docs/audit_log.md) of the collection.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
attributes:
  check_mode:
    support: full
    details: In check mode O(operation=append) reports the event it would write and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: O(operation=append) adds an event every time it runs; the other operations never change anything.
options:
  path:
    description:
      - The live audit log file.  Rotated files sit beside it as C(<path>.000001), C(<path>.000002), ...
        and the last line's digest in C(<path>.head).
      - Missing directories are created (mode C(0750)).
    type: path
    default: /var/log/lastgood/audit.jsonl
  operation:
    description: What to do with the log.
    type: str
    choices: [append, verify, query, active_sessions]
    default: append
  event:
    description:
      - Name of the event to append, for example V(rollback_start), V(session_start), V(security_violation).
      - Required when O(operation=append).
    type: str
  run_id:
    description:
      - The run the event belongs to (O(operation=append)), or the run to select (O(operation=query)).
    type: str
  level:
    description: Severity of the appended event.
    type: str
    choices: [debug, info, notice, warning, error, critical]
    default: info
  detail:
    description:
      - Free-form data of the appended event.  Sessions are identified by C(detail.session_id);
        security violations by C(detail.code) (for example V(SEC-PM-004)); session outcomes by
        C(detail.status) (V(success) or anything else).
      - Never put secrets here; the log is meant to be read.
    type: dict
    default: {}
  user:
    description: Who is acting.  Defaults to the user the module runs as on the target.
    type: str
  rotate_bytes:
    description:
      - Rotate the live file before an append that would make it larger than this many bytes.
      - V(0) never rotates.
    type: int
    default: 10485760
  events:
    description: Event names to select (O(operation=query)).  Empty selects every event.
    type: list
    elements: str
    default: []
  levels:
    description: Levels to select (O(operation=query)).  Empty selects every level.
    type: list
    elements: str
    default: []
  since:
    description: Select events at or after this ISO-8601 time (O(operation=query)); no zone means UTC.
    type: str
  until:
    description: Select events at or before this ISO-8601 time (O(operation=query)); no zone means UTC.
    type: str
  fail_on_broken:
    description: With O(operation=verify), fail when the chain is broken (otherwise only report it).
    type: bool
    default: true
seealso:
  - module: lastgood.rollback.rollback_decide
  - module: lastgood.rollback.lock
'''

EXAMPLES = r'''
- name: Record the start of the rollback
  lastgood.rollback.audit_log:
    event: rollback_start
    run_id: "{{ run_id }}"
    level: warning
    detail:
      level: 2
      reason: bad configuration deployed

- name: Prove nothing in the audit log was edited or removed
  lastgood.rollback.audit_log:
    operation: verify

- name: Sessions that are still running
  lastgood.rollback.audit_log:
    operation: active_sessions
  register: sessions

- name: Mark each active session terminated because the feature was disabled
  lastgood.rollback.audit_log:
    event: session_end
    run_id: "{{ run_id }}"
    detail:
      session_id: "{{ item.session_id }}"
      status: terminated
      reason: feature_disabled
  loop: "{{ sessions.sessions }}"

- name: Everything this run recorded since the incident began
  lastgood.rollback.audit_log:
    operation: query
    run_id: "{{ run_id }}"
    since: "2026-11-21T23:00:00Z"
'''

RETURN = r'''
record:
  description: The appended event (without C(prev)).
  returned: O(operation=append)
  type: dict
  sample: {ts: '2026-11-21T23:15:00.123456Z', run_id: r1, host: web1, user: root, level: info, event: rollback_start, detail: {}}
sha256:
  description: SHA-256 of the appended line, the C(prev) of the next line.
  returned: O(operation=append) and not in check mode
  type: str
prev:
  description: SHA-256 of the line before the appended one (the genesis value for the first line).
  returned: O(operation=append) and not in check mode
  type: str
rotated:
  description: Name the live file was rotated to before this append, or null.
  returned: O(operation=append) and not in check mode
  type: str
quarantined:
  description:
    - O(operation=append) - the live file (and its head file) moved aside read-only as C(<path>.corrupt-<UTC time>)
      because it failed the check made before every append; the new live file begins with an
      C(audit_log_quarantined) record naming it, chained to the rotated files. Empty when the log was sound.
    - O(operation=verify) - the C(audit_log_quarantined) records met on the chain (C(file), C(ts), C(reason)); each
      is checked against the SHA-256 of the quarantined file it records.
  returned: O(operation=append) and not in check mode, or O(operation=verify)
  type: list
  elements: raw
ok:
  description: Whether the chain is intact.
  returned: O(operation=verify)
  type: bool
lines:
  description: Number of lines checked across all files.
  returned: O(operation=verify)
  type: int
files:
  description: The files of the chain, oldest first.
  returned: O(operation=verify)
  type: list
  elements: str
first_broken:
  description: Where the chain breaks (C(file), C(line) within it, C(number) across the chain, C(reason)), or null.
  returned: O(operation=verify)
  type: dict
unanchored_lines:
  description: Lines after the last one recorded in the head file (left by an append whose head update failed).
  returned: O(operation=verify)
  type: int
events:
  description: Matching events, oldest first, each with C(_file) and C(_line) telling where it is.
  returned: O(operation=query)
  type: list
  elements: dict
sessions:
  description: Sessions started and not ended, oldest first (C(session_id), C(started), C(run_id), C(host), C(user)).
  returned: O(operation=active_sessions)
  type: list
  elements: dict
count:
  description: Number of matching events or active sessions.
  returned: O(operation=query) or O(operation=active_sessions)
  type: int
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def _window(module):
    bounds = []
    for name in ('since', 'until'):
        value = module.params[name]
        try:
            bounds.append(None if value is None else _audit.parse_ts(value))
        except ValueError as exc:
            module.fail_json(msg='%s: %s' % (name, exc))
    return bounds


def run(module):
    params = module.params
    path = params['path']
    operation = params['operation']
    if operation == 'append':
        record = _audit.build_record(params['event'], run_id=params['run_id'], level=params['level'],
                                     detail=params['detail'], user=params['user'])
        if module.check_mode:
            return {'changed': True, 'record': record}
        result = _audit.append(path, params['event'], run_id=params['run_id'], level=params['level'],
                               detail=params['detail'], user=params['user'], ts=record['ts'],
                               rotate_bytes=params['rotate_bytes'] or None)
        if result['warning']:
            module.warn(result['warning'])
        for quarantined in result['quarantined']:
            module.warn('the audit log was corrupt, so it was not extended: %s was moved aside read-only and a new '
                        'log begins with an %s record naming it' % (quarantined, _audit.QUARANTINED))
        return {'changed': True, 'record': result['record'], 'sha256': result['sha256'], 'prev': result['prev'],
                'rotated': result['rotated'], 'quarantined': result['quarantined']}
    if operation == 'verify':
        result = _audit.verify(path)
        if not result['ok'] and params['fail_on_broken']:
            module.fail_json(msg=result['message'], **result)
        return dict(result, changed=False, msg=result['message'])
    if operation == 'query':
        since, until = _window(module)
        found = _audit.query(path, run_id=params['run_id'], events=params['events'], since=since, until=until,
                             levels=params['levels'])
        return {'changed': False, 'events': found, 'count': len(found)}
    sessions = _audit.active_sessions(path)
    return {'changed': False, 'sessions': sessions, 'count': len(sessions)}


def main():
    module = ResultModule(
        argument_spec=dict(
            path=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
            operation=dict(type='str', default='append', choices=['append', 'verify', 'query', 'active_sessions']),
            event=dict(type='str'),
            run_id=dict(type='str'),
            level=dict(type='str', default='info', choices=list(_audit.LEVELS)),
            detail=dict(type='dict', default={}),
            user=dict(type='str'),
            rotate_bytes=dict(type='int', default=10485760),
            events=dict(type='list', elements='str', default=[]),
            levels=dict(type='list', elements='str', default=[]),
            since=dict(type='str'),
            until=dict(type='str'),
            fail_on_broken=dict(type='bool', default=True),
        ),
        required_if=[('operation', 'append', ('event',))],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (_audit.AuditError, OSError) as exc:
        module.fail_json(msg='audit log %s, operation %s: %s' % (module.params['path'], module.params['operation'], exc))


if __name__ == '__main__':
    main()
