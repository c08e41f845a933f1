# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: eda_trigger
short_description: What an Event-Driven Ansible event asks for, in the shape the automatic rollback decides on
version_added: 0.2.0
description:
  - Takes the C(ansible_eda) variable that ansible-rulebook (or an EDA controller activation) passes to the
    playbook it starts and returns C({source, hosts, incident, metrics, conditions, summary, rule, ruleset}).
  - Understands the events of the collection's sources (C(lastgood.rollback.health_metrics),
    C(lastgood.rollback.audit_follow)) and Alertmanager webhook payloads received by C(eda.builtin.webhook).
  - For Alertmanager, each firing alert contributes its C(lastgood_condition) label as a condition, or its C(lastgood_metric)
    label with the C(value) annotation (or label) as a metric; its C(host) label (else the host part of
    C(instance)) names the host; the incident is the alert group's key.
  - Fails with a message naming what is missing when the event is neither.
options:
  _input:
    description: The C(ansible_eda) variable (C(ruleset), C(rule), C(event)).
    type: dict
    required: true
author:
  - lastgood.rollback developers (@lastgood)
'''

EXAMPLES = r'''
- name: Read the event that started this run
  ansible.builtin.set_fact:
    trigger: "{{ ansible_eda | lastgood.rollback.eda_trigger }}"
'''

RETURN = r'''
_value:
  description: C({source, hosts, incident, metrics, conditions, summary, rule, ruleset, event_type}).
  type: dict
'''

import hashlib
import json

from ansible.errors import AnsibleFilterError

from ansible_collections.lastgood.rollback.plugins.module_utils import _decide, _watch


def _alert_host(labels):
    host = labels.get('host') or labels.get('instance') or ''
    if host.startswith('[') and ']' in host:
        return host[1:host.index(']')]
    return host.rsplit(':', 1)[0] if host.count(':') == 1 else host


def _from_alertmanager(payload):
    firing = [alert for alert in payload.get('alerts') or [] if alert.get('status', 'firing') == 'firing']
    if not firing:
        raise AnsibleFilterError('the Alertmanager payload has no firing alert (status %s): nothing to decide'
                                 % payload.get('status'))
    conditions, metrics, hosts, names = [], {}, [], []
    for alert in firing:
        labels = alert.get('labels') or {}
        annotations = alert.get('annotations') or {}
        names.append(labels.get('alertname', '?'))
        if labels.get('lastgood_condition'):
            conditions.append(labels['lastgood_condition'])
        if labels.get('lastgood_metric'):
            value = annotations.get('value', labels.get('value'))
            try:
                metrics[labels['lastgood_metric']] = float(value)
            except (TypeError, ValueError):
                raise AnsibleFilterError('alert %s: lastgood_metric %s needs a numeric value annotation, got %r'
                                         % (labels.get('alertname'), labels['lastgood_metric'], value))
        host = _alert_host(labels)
        if host and host not in hosts:
            hosts.append(host)
    if not hosts:
        raise AnsibleFilterError('no firing alert names a host (label host, or instance): nothing to act on (alerts: %s)'
                                 % ', '.join(names))
    if not conditions and not metrics:
        raise AnsibleFilterError('no firing alert carries a lastgood_condition or lastgood_metric label (alerts: %s)'
                                 % ', '.join(names))
    key = payload.get('groupKey') or json.dumps(sorted(alert.get('fingerprint', '') for alert in firing))
    incident = 'alertmanager-' + hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]
    return {'source': 'alertmanager', 'event_type': 'trigger', 'hosts': sorted(hosts), 'incident': incident,
            'metrics': metrics, 'conditions': sorted(set(conditions)),
            'summary': 'alertmanager alert %s on %s' % (', '.join(sorted(set(names))), ', '.join(sorted(hosts)) or '?')}


def eda_trigger(ansible_eda):
    if not isinstance(ansible_eda, dict) or not isinstance(ansible_eda.get('event'), dict):
        raise AnsibleFilterError('eda_trigger needs the ansible_eda variable of a run started by a rulebook '
                                 '(with an event); got %r' % (type(ansible_eda).__name__,))
    event = ansible_eda['event']
    if isinstance(event.get('lastgood'), dict):
        body = event['lastgood']
        trigger = {'source': body.get('source'), 'event_type': body.get('type'), 'hosts': list(body.get('hosts') or []),
                   'incident': body.get('incident') or '', 'metrics': dict(body.get('metrics') or {}),
                   'conditions': list(body.get('conditions') or []), 'summary': body.get('summary') or ''}
    elif isinstance(event.get('payload'), dict) and 'alerts' in event['payload']:
        trigger = _from_alertmanager(event['payload'])
    else:
        raise AnsibleFilterError('the event is neither a lastgood.rollback source event (event.lastgood) nor an '
                                 'Alertmanager payload (event.payload.alerts): keys %s' % ', '.join(sorted(event)))
    trigger.update(rule=ansible_eda.get('rule'), ruleset=ansible_eda.get('ruleset'))
    return trigger


def eda_overrides(rule_overrides):
    """Rule overrides with thresholds as numbers: rulebook variables may arrive as text."""
    try:
        return _watch.numeric_overrides(rule_overrides)
    except _decide.DecisionError as exc:
        raise AnsibleFilterError('rule_overrides: %s' % exc)


class FilterModule:
    def filters(self):
        return {'eda_trigger': eda_trigger, 'eda_overrides': eda_overrides}
