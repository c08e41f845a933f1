# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the Event-Driven Ansible sources of the collection watch, as plain functions.

The event sources (``extensions/eda/plugins/event_source``) poll and follow; this file
holds everything they decide: reading the Prometheus text format, picking the samples
that stand for the decision matrix's metrics, the back-off when a target does not
answer, and the incidents.  An incident opens when ``_decide`` first indicates a
rollback for a target and closes after ``clear_after`` readings in a row indicate
none; it is kept on disk, so a restarted source goes on with the same incident
(and the same incident id) instead of announcing it a second time.
"""

from __future__ import annotations

import binascii
import json
import math
import os
import re
import time

from . import _audit, _decide
from ._fsatomic import atomic_write_json, makedirs_durable

# The demo application's names (docs/demo-app.md); any exporter's names can be given instead.
DEFAULT_METRIC_NAMES = {
    'error_rate': 'app_error_rate_percent',
    'session_success_rate': 'app_session_success_rate_percent',
    'quality_score': 'app_quality_score',
    'resource_usage': 'app_resource_usage_percent',
    'integration_test_failure_rate': 'app_integration_test_failure_rate_percent',
    'latency_seconds': 'app_request_latency_seconds',
}

_NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
_SAMPLE_RE = re.compile(r'^(%s)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$' % _NAME)
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_SELECTOR_RE = re.compile(r'^(%s)(\{(.*)\})?$' % _NAME)
_SPECIAL_VALUES = {'+Inf': math.inf, '-Inf': -math.inf, 'NaN': math.nan}


class WatchError(Exception):
    """A target answered with something that cannot be read; the message says what and where."""


def _labels(text, where):
    labels, position = {}, 0
    text = text.strip()
    while position < len(text):
        match = _LABEL_RE.match(text, position)
        if not match:
            raise WatchError('%s: cannot read the labels {%s}' % (where, text))
        labels[match.group(1)] = re.sub(r'\\(.)', lambda m: {'n': '\n'}.get(m.group(1), m.group(1)), match.group(2))
        position = match.end()
    return labels


def parse_prometheus(text):
    """``[(name, labels, value)]`` from the Prometheus text exposition format.

    Comments and blank lines are skipped; any other line that is not a sample, or a
    body with no sample at all, raises WatchError naming the line: an HTML error page
    or a truncated answer is never read as "no problem".
    """
    samples = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            raise WatchError('line %d is not a Prometheus sample: %.80r' % (number, line))
        value_text = match.group(4)
        try:
            value = _SPECIAL_VALUES[value_text] if value_text in _SPECIAL_VALUES else float(value_text)
        except ValueError:
            raise WatchError('line %d: %r is not a number' % (number, value_text))
        samples.append((match.group(1), _labels(match.group(3) or '', 'line %d' % number), value))
    if not samples:
        raise WatchError('no Prometheus samples in the answer (%d bytes)' % len(text))
    return samples


def parse_selector(selector):
    """``'name{label="value"}'`` -> (name, {label: value})."""
    match = _SELECTOR_RE.match((selector or '').strip())
    if not match:
        raise WatchError('metric selector %r is not name or name{label="value",...}' % (selector,))
    return match.group(1), _labels(match.group(3) or '', 'selector %s' % selector)


def select(samples, selector):
    """The largest value among the samples that match ``selector``, or None.

    The largest, because a rule that fires above its threshold must see the worst
    series; NaN samples are ignored.
    """
    name, wanted = parse_selector(selector)
    values = [value for sample_name, labels, value in samples
              if sample_name == name and all(labels.get(k) == v for k, v in wanted.items()) and not math.isnan(value)]
    return max(values) if values else None


def read_metrics(samples, names):
    """``{metric: value}`` for every metric in ``names`` (metric -> selector) present in ``samples``."""
    found = {}
    for metric, selector in names.items():
        value = select(samples, selector)
        if value is not None:
            found[metric] = int(value) if float(value).is_integer() else value
    return found


def decision_metrics(metrics, rules=None, rule_overrides=None):
    """The part of ``metrics`` the decision matrix knows (the rest is reported, not judged)."""
    known = set(rule['metric'] for rule in _decide.effective_rules(rules, rule_overrides) if 'metric' in rule)
    known.update(_decide.BREAKER_METRICS)
    return dict((name, value) for name, value in metrics.items() if name in known)


def numeric_overrides(rule_overrides):
    """Rule overrides with thresholds as numbers (rulebook variables may arrive as text)."""
    fixed = {}
    for name, fields in (rule_overrides or {}).items():
        fields = dict(fields or {})
        if isinstance(fields.get('threshold'), str):
            try:
                fields['threshold'] = float(fields['threshold'])
            except ValueError:
                raise _decide.DecisionError('rule %s: threshold %r is not a number' % (name, fields['threshold']))
        if isinstance(fields.get('enabled'), str):
            fields['enabled'] = fields['enabled'].strip().lower() in ('1', 'true', 'yes', 'on')
        fixed[name] = fields
    return fixed


def numeric_breaker(overrides):
    """Circuit-breaker overrides with numbers as numbers (rulebook variables may arrive as text)."""
    fixed = dict(overrides or {})
    for key, value in fixed.items():
        if isinstance(value, str) and key in _NUMERIC_BREAKER_FIELDS:
            try:
                fixed[key] = float(value)
            except ValueError:
                raise _decide.DecisionError('circuit_breaker.%s: %r is not a number' % (key, value))
    return fixed


_NUMERIC_BREAKER_FIELDS = ('violation_window_minutes', 'min_violations', 'session_window', 'success_rate_below',
                           'intervention_wait_minutes')


def summary(decision):
    """The part of a ``_decide.decide`` result an event carries."""
    return dict((key, decision[key]) for key in ('level', 'rule', 'reason', 'urgency', 'authority', 'automatic'))


def event_summary(source, host, decision):
    """``'health_metrics event on web1 (error_rate is 25, > 10)'``: the "on <event>" of a report."""
    return '%s event on %s (%s)' % (source, host, decision['fired'][0]['reason'] if decision['fired'] else 'no rule fired')


def next_delay(interval, failures, max_interval):
    """Seconds until the next poll: ``interval`` while a target answers, doubling per failure up to ``max_interval``."""
    if failures <= 0:
        return float(interval)
    return float(min(max_interval, interval * (2 ** min(failures, 30))))


class Incidents:
    """Open incidents per target, kept in ``path`` (JSON, replaced atomically at each change).

    ``observe`` takes a decision for a target and says what changed: ``opened`` (a first
    decision with a level), ``escalated`` (a higher level while open), ``resolved`` (after
    ``clear_after`` readings in a row without a level), or None.
    """

    def __init__(self, path, clear_after=3):
        self.path = path
        self.clear_after = max(1, int(clear_after))
        self.open = {}
        if path and os.path.exists(path):
            try:
                with open(path) as handle:
                    self.open = json.load(handle).get('open', {})
            except (OSError, ValueError):
                self.open = {}

    def _save(self):
        if self.path:
            makedirs_durable(os.path.dirname(os.path.abspath(self.path)), mode=0o700)
            atomic_write_json(self.path, {'version': 1, 'open': self.open})

    def observe(self, target, decision, now=None):
        """``(change, incident)``; ``incident`` is the open (or just resolved) incident record."""
        now = time.time() if now is None else now
        current = self.open.get(target)
        level = decision.get('level') or 0
        if level > 0:
            if current is None:
                # seconds are not enough: an incident may resolve and the next open within one second
                stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
                current = {'id': '%s-%s-%s-%s' % (target, decision.get('rule'), stamp, binascii.hexlify(os.urandom(3)).decode()),
                           'target': target,
                           'opened': _audit.format_ts(now), 'level': level, 'rule': decision.get('rule'),
                           'clear_streak': 0}
                self.open[target] = current
                self._save()
                return 'opened', dict(current)
            changed = current['clear_streak'] != 0
            current['clear_streak'] = 0
            if level > current['level']:
                current.update(level=level, rule=decision.get('rule'))
                self._save()
                return 'escalated', dict(current)
            if changed:
                self._save()
            return None, dict(current)
        if current is None:
            return None, None
        current['clear_streak'] += 1
        if current['clear_streak'] >= self.clear_after:
            del self.open[target]
            self._save()
            return 'resolved', dict(current, resolved=_audit.format_ts(now))
        self._save()
        return None, dict(current)
