# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""lastgood.rollback.health_metrics: poll each host's health and Prometheus metrics, decide, announce incidents."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
import types
import urllib.error
import urllib.request

DOCUMENTATION = r'''
---
short_description: Poll each host's health and metrics and announce rollback incidents
description:
  - Polls every target's Prometheus text-format metrics endpoint and, when given, its health URL or health
    command.  The readings go through the collection's decision matrix (the engine of
    C(lastgood.rollback.rollback_decide)); when it indicates a rollback an incident opens and one
    C(trigger) event is put on the queue; C(resolved) follows after O(clear_after) readings without.
  - Incidents are kept in O(state_dir), so a restarted rulebook goes on with the same incident id.
  - A target that does not answer, or answers with something that is not the Prometheus text format, gives
    one C(target_error) event (and C(target_recovered) when it answers again) and is polled with a
    back-off (doubling up to O(max_interval)); it never ends the rulebook.
  - Every event is C({"lastgood": {"type", "source", "host", "hosts", "time", "summary", ...}}); see the
    collection's C(docs/automatic.md).
options:
  targets:
    description:
      - The hosts, each C({host, metrics_url, health_url, health_command, metrics}); C(host) is the inventory
        name the rollback acts on; C(metrics) overrides O(metrics) for that host.
    type: list
    required: true
  metrics:
    description: Decision-matrix metric name -> Prometheus selector (C(name) or C(name{label="value"})); largest value wins.
    type: dict
  rule_overrides:
    description: Changes to the decision matrix's rules by name, as O(lastgood.rollback.rollback_decide#module:rule_overrides).
    type: dict
  interval:
    description: Seconds between two polls of a target that answers.
    type: float
    default: 15
  max_interval:
    description: Longest wait between two polls of a target that does not answer.
    type: float
    default: 300
  timeout:
    description: Seconds to wait for an answer or a health command.
    type: float
    default: 5
  clear_after:
    description: Readings in a row without a rollback indicated before an incident is resolved.
    type: int
    default: 3
  state_dir:
    description: Where open incidents are kept.
    type: str
    default: ~/.lastgood/automatic/sources
'''

EXAMPLES = r'''
- lastgood.rollback.health_metrics:
    targets:
      - host: web1
        metrics_url: http://web1:8080/metrics
        health_url: http://web1:8080/health
    rule_overrides:
      error_rate_high:
        threshold: 10
    interval: 15
'''

SOURCE = 'health_metrics'


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


def _fetch(url, timeout):
    """(HTTP status, body text); HTTP errors are statuses, anything else raises OSError."""
    request = urllib.request.Request(url, headers={'Accept': 'text/plain'})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(1 << 20).decode('utf-8', 'replace')
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode('utf-8', 'replace')


async def _health(target, timeout):
    """``{ok, detail}`` from the health URL or command, or None when the target has neither."""
    if target.get('health_url'):
        try:
            status, body = await asyncio.to_thread(_fetch, target['health_url'], timeout)
        except OSError as exc:
            return {'ok': False, 'detail': 'health %s: %s' % (target['health_url'], getattr(exc, 'reason', exc))}
        return {'ok': status == 200, 'detail': 'health %s: HTTP %d' % (target['health_url'], status)}
    if target.get('health_command'):
        command = [str(part) for part in target['health_command']]
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        try:
            output = (await asyncio.wait_for(process.communicate(), timeout))[0]
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            return {'ok': False, 'detail': 'health command %s: no answer in %g s' % (command[0], timeout)}
        return {'ok': process.returncode == 0,
                'detail': 'health command %s: exit %d %s' % (command[0], process.returncode,
                                                             output.decode('utf-8', 'replace').strip()[:200])}
    return None


async def read_target(target, names, timeout):
    """``(metrics, health)`` of one target; raises _watch.WatchError saying what could not be read."""
    url = target['metrics_url']
    try:
        status, body = await asyncio.to_thread(_fetch, url, timeout)
    except OSError as exc:
        raise _watch.WatchError('metrics endpoint %s does not answer: %s' % (url, getattr(exc, 'reason', exc)))
    if status != 200:
        raise _watch.WatchError('metrics endpoint %s answered HTTP %d' % (url, status))
    try:
        samples = _watch.parse_prometheus(body)
    except _watch.WatchError as exc:
        raise _watch.WatchError('metrics endpoint %s: %s' % (url, exc))
    metrics = _watch.read_metrics(samples, dict(names, **(target.get('metrics') or {})))
    if not metrics:
        raise _watch.WatchError('metrics endpoint %s has none of the watched metrics (%s)'
                                % (url, ', '.join(sorted(names.values()))))
    return metrics, await _health(target, timeout)


def _event(kind, host, **fields):
    body = {'type': kind, 'source': SOURCE, 'host': host, 'hosts': [host], 'time': _audit.format_ts(time.time())}
    body.update(fields)
    return {'lastgood': body}


class TargetWatch:
    """One target's poll loop state: what it announced last, so each change is announced once."""

    def __init__(self, target, settings, incidents):
        self.target = target
        self.host = str(target['host'])
        self.settings = settings
        self.incidents = incidents
        self.failures = 0
        self.error = None
        self.health_ok = None

    def failed(self, message):
        """Events for a failed reading (one per outage, and one when the reason changes)."""
        self.failures += 1
        announce = message != self.error
        self.error = message
        delay = _watch.next_delay(self.settings['interval'], self.failures, self.settings['max_interval'])
        if not announce:
            return []
        return [_event('target_error', self.host, error=message, failures=self.failures, retry_in=delay,
                       summary='%s: %s; no action taken, next try in %g s' % (self.host, message, delay))]

    def read(self, metrics, health):
        """Events for a successful reading."""
        events = []
        if self.error is not None:
            events.append(_event('target_recovered', self.host, after_failures=self.failures,
                                 summary='%s answers again after %d failed readings' % (self.host, self.failures)))
        self.failures, self.error = 0, None
        if health is not None and health['ok'] != self.health_ok:
            self.health_ok = health['ok']
            events.append(_event('health', self.host, health=health, summary='%s: %s' % (self.host, health['detail'])))
        overrides = self.settings['rule_overrides']
        judged = _watch.decision_metrics(metrics, rule_overrides=overrides)
        decision = _decide.decide(metrics=judged, rule_overrides=overrides)
        change, incident = self.incidents.observe(self.host, decision)
        if change in ('opened', 'escalated'):
            events.append(_event('trigger', self.host, change=change, incident=incident['id'], metrics=judged,
                                 readings=metrics, conditions=[], decision=_watch.summary(decision), health=health,
                                 summary=_watch.event_summary(SOURCE, self.host, decision)))
        elif change == 'resolved':
            events.append(_event('resolved', self.host, incident=incident['id'], readings=metrics,
                                 summary='%s: incident %s resolved' % (self.host, incident['id'])))
        return events

    def delay(self):
        return _watch.next_delay(self.settings['interval'], self.failures, self.settings['max_interval'])


async def watch(queue, target_watch, names, timeout):
    while True:
        try:
            metrics, health = await read_target(target_watch.target, names, timeout)
            events = target_watch.read(metrics, health)
        except _watch.WatchError as exc:
            events = target_watch.failed(str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            # A source that raises ends the rulebook: anything unforeseen becomes an event instead.
            events = target_watch.failed('unexpected error reading %s: %s: %s'
                                         % (target_watch.host, type(exc).__name__, exc))
        for event in events:
            await queue.put(event)
        await asyncio.sleep(target_watch.delay())


def settings_from(args):
    """Checked settings from the source's arguments; raises ValueError naming the bad one."""
    targets = args.get('targets')
    if not isinstance(targets, list) or not targets:
        raise ValueError('targets must be a non-empty list of {host, metrics_url, ...}')
    for target in targets:
        if not isinstance(target, dict) or not target.get('host') or not target.get('metrics_url'):
            raise ValueError('every target needs host and metrics_url: %r' % (target,))
    overrides = _watch.numeric_overrides(args.get('rule_overrides') or {})
    _decide.effective_rules(None, overrides)
    return {
        'targets': targets,
        'names': dict(args.get('metrics') or _watch.DEFAULT_METRIC_NAMES),
        'rule_overrides': overrides,
        'interval': float(args.get('interval', 15)),
        'max_interval': float(args.get('max_interval', 300)),
        'timeout': float(args.get('timeout', 5)),
        'clear_after': int(args.get('clear_after', 3)),
        'state_dir': os.path.expanduser(str(args.get('state_dir') or '~/.lastgood/automatic/sources')),
    }


async def main(queue, args):
    try:
        settings = settings_from(args)
    except (ValueError, TypeError, _decide.DecisionError) as exc:
        await queue.put(_event('source_error', None, error=str(exc),
                               summary='%s cannot start: %s; nothing is watched' % (SOURCE, exc)))
        # Ending here would end the rulebook; the error event is what the operator needs.
        while True:
            await asyncio.sleep(3600)
    incidents = _watch.Incidents(os.path.join(settings['state_dir'], SOURCE + '.json'), settings['clear_after'])
    await asyncio.gather(*[watch(queue, TargetWatch(target, settings, incidents), settings['names'],
                                 settings['timeout']) for target in settings['targets']])


if __name__ == '__main__':
    class _PrintQueue:
        async def put(self, event):
            print(event)

    asyncio.run(main(_PrintQueue(), {'targets': [{'host': 'localhost', 'metrics_url': sys.argv[1]}], 'interval': 2}))
