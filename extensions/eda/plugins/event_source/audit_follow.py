# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.audit_follow: follow an audit log, decide with the circuit breaker, announce incidents."""

from __future__ import annotations

import asyncio
import collections
import importlib
import json
import os
import sys
import time
import types

DOCUMENTATION = r'''
---
short_description: Follow a lastgood.rollback audit log and announce security violations and rollback incidents
description:
  - Follows an audit log in the format of C(lastgood.rollback.audit_log) (JSON lines with C(ts), C(event),
    C(level), C(detail)), as C(tail -F) does: from its first line at start, then each appended line, through
    rotation.
  - Every new line whose event is in O(forward) becomes an C(audit) event (security violations, session ends).
  - After each batch of lines, and every O(interval) seconds (the circuit breaker waits for a human), the
    records go through the decision matrix and the circuit breaker (the engine of
    C(lastgood.rollback.rollback_decide) with its O(audit_log) semantics); a decision with a level opens an
    incident and puts one C(trigger) event on the queue.  Incidents are kept in O(state_dir).
  - A missing or unreadable log gives one C(target_error) event and is retried with a back-off; it never ends the rulebook.
options:
  logs:
    description:
      - The audit logs to follow, each C({host, path}); C(host) is the inventory name of the host the log
        belongs to (the host a rollback acts on).  A log on another machine must be readable here (shipped,
        or on a shared mount).
    type: list
  path:
    description: One audit log to follow, instead of O(logs).
    type: str
  host:
    description: Inventory name of the host O(path) belongs to.
    type: str
    default: localhost
  forward:
    description: Audit events passed on as C(audit) events.
    type: list
    default: [security_violation, session_end]
  rule_overrides:
    description: Changes to the decision matrix's rules by name.
    type: dict
  circuit_breaker:
    description: Changes to the circuit breaker by field, as O(lastgood.rollback.rollback_decide#module:circuit_breaker).
    type: dict
  interval:
    description: Seconds between two reads of the log.
    type: float
    default: 5
  max_interval:
    description: Longest wait between two reads of a log that cannot be read.
    type: float
    default: 300
  keep:
    description: Records kept in memory to decide from (the newest).
    type: int
    default: 5000
  clear_after:
    description: Evaluations in a row without a rollback indicated before an incident is resolved.
    type: int
    default: 3
  state_dir:
    description: Where open incidents are kept.
    type: str
    default: ~/.lastgood/automatic/sources
'''

EXAMPLES = r'''
- lastgood.rollback.audit_follow:
    path: /var/log/lastgood/audit.jsonl
    host: web1
    circuit_breaker:
      intervention_events: [manual_intervention, feature_disabled]
'''

SOURCE = 'audit_follow'


def _engine():
    """The collection's engine (plugins/module_utils) next to this file, whatever its install path."""
    utils = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          '..', '..', '..', '..', 'plugins', 'module_utils'))
    name = '_lastgood_rollback_engine_' + str(abs(hash(utils)))
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [utils]
        sys.modules[name] = package
    return (importlib.import_module(name + '._decide'), importlib.import_module(name + '._watch'),
            importlib.import_module(name + '._audit'))


_decide, _watch, _audit = _engine()


def _event(kind, host, **fields):
    body = {'type': kind, 'source': SOURCE, 'host': host, 'hosts': [host], 'time': _audit.format_ts(time.time())}
    body.update(fields)
    return {'lastgood': body}


class LogFollower:
    """New complete lines of a log file, across rotation (a new inode at the path starts from its first line)."""

    def __init__(self, path):
        self.path = path
        self.inode = None
        self.offset = 0
        self.partial = b''

    def read(self):
        """New complete lines; raises OSError when the log cannot be read."""
        stat = os.stat(self.path)
        if (stat.st_dev, stat.st_ino) != self.inode or stat.st_size < self.offset:
            self.inode, self.offset, self.partial = (stat.st_dev, stat.st_ino), 0, b''
        with open(self.path, 'rb') as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b'\n')
        self.partial = lines.pop()
        return [line.decode('utf-8', 'replace') for line in lines if line.strip()]


class AuditWatch:
    def __init__(self, log, settings, incidents):
        self.settings = dict(settings, path=log['path'])
        self.host = log['host']
        self.incidents = incidents
        self.follower = LogFollower(log['path'])
        self.records = collections.deque(maxlen=settings['keep'])
        self.failures = 0
        self.error = None
        self.unreadable = 0

    def poll(self):
        """Events for one read of the log and one evaluation."""
        events = []
        try:
            lines = self.follower.read()
        except OSError as exc:
            self.failures += 1
            message = 'audit log %s cannot be read: %s' % (self.settings['path'], exc.strerror or exc)
            if message != self.error:
                self.error = message
                events.append(_event('target_error', self.host, error=message, failures=self.failures,
                                     summary='%s: %s; no action taken' % (self.host, message)))
            return events
        if self.error is not None:
            events.append(_event('target_recovered', self.host, after_failures=self.failures,
                                 summary='%s: audit log %s readable again' % (self.host, self.settings['path'])))
        self.failures, self.error = 0, None
        for line in lines:
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError('not an object')
            except ValueError:
                self.unreadable += 1
                if self.unreadable == 1:
                    events.append(_event('target_error', self.host, error='audit log %s holds a line that is not '
                                         'a JSON object: %.80r' % (self.settings['path'], line),
                                         summary='%s: unreadable audit line skipped' % self.host))
                continue
            self.records.append(record)
            if record.get('event') in self.settings['forward']:
                events.append(_event('audit', self.host, record=record,
                                     summary='%s: %s %s' % (self.host, record.get('event'),
                                                            json.dumps(record.get('detail'), sort_keys=True))))
        decision = _decide.decide(audit_records=list(self.records), rule_overrides=self.settings['rule_overrides'],
                                  breaker_overrides=self.settings['circuit_breaker'])
        change, incident = self.incidents.observe(self.host, decision)
        if change in ('opened', 'escalated'):
            events.append(_event('trigger', self.host, change=change, incident=incident['id'],
                                 metrics=decision['metrics'], conditions=decision['conditions'],
                                 decision=_watch.summary(decision),
                                 summary=_watch.event_summary(SOURCE, self.host, decision)))
        elif change == 'resolved':
            events.append(_event('resolved', self.host, incident=incident['id'],
                                 summary='%s: incident %s resolved' % (self.host, incident['id'])))
        return events

    def delay(self):
        return _watch.next_delay(self.settings['interval'], self.failures, self.settings['max_interval'])


def settings_from(args):
    logs = args.get('logs') or ([{'path': args['path'], 'host': args.get('host') or 'localhost'}]
                                if args.get('path') else [])
    if not isinstance(logs, list) or not logs:
        raise ValueError('logs (a list of {host, path}) or path is required')
    for log in logs:
        if not isinstance(log, dict) or not log.get('path') or not log.get('host'):
            raise ValueError('every log needs host and path: %r' % (log,))
    overrides = _watch.numeric_overrides(args.get('rule_overrides') or {})
    breaker = _watch.numeric_breaker(args.get('circuit_breaker') or {})
    _decide.effective_rules(None, overrides)
    _decide.effective_breaker(breaker)
    return {
        'logs': [{'host': str(log['host']), 'path': os.path.expanduser(str(log['path']))} for log in logs],
        'forward': list(args.get('forward') or ['security_violation', 'session_end']),
        'rule_overrides': overrides,
        'circuit_breaker': breaker,
        'interval': float(args.get('interval', 5)),
        'max_interval': float(args.get('max_interval', 300)),
        'keep': int(args.get('keep', 5000)),
        'clear_after': int(args.get('clear_after', 3)),
        'state_dir': os.path.expanduser(str(args.get('state_dir') or '~/.lastgood/automatic/sources')),
    }


async def main(queue, args):
    try:
        settings = settings_from(args)
    except (ValueError, TypeError, _decide.DecisionError) as exc:
        await queue.put(_event('source_error', None, error=str(exc),
                               summary='%s cannot start: %s; nothing is watched' % (SOURCE, exc)))
        while True:
            await asyncio.sleep(3600)
    incidents = _watch.Incidents(os.path.join(settings['state_dir'], SOURCE + '.json'), settings['clear_after'])
    await asyncio.gather(*[follow(queue, AuditWatch(log, settings, incidents)) for log in settings['logs']])


async def follow(queue, watch):
    while True:
        try:
            events = watch.poll()
        except Exception as exc:  # pylint: disable=broad-except
            # A source that raises ends the rulebook: anything unforeseen becomes an event instead.
            watch.failures += 1
            events = [_event('target_error', watch.host, error='%s: %s' % (type(exc).__name__, exc),
                             summary='%s: unexpected error following %s: %s'
                                     % (watch.host, watch.settings['path'], exc))]
        for event in events:
            await queue.put(event)
        await asyncio.sleep(watch.delay())


if __name__ == '__main__':
    class _PrintQueue:
        async def put(self, event):
            print(event)

    asyncio.run(main(_PrintQueue(), {'path': sys.argv[1], 'interval': 2}))
