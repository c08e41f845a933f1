#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: verify
short_description: Verify a host in one task - files, documents, live paths against a manifest, health, tests
version_added: 0.2.0
description:
  - Runs every check, read-only, then fails once (O(fail)) with one line per failed check.  The result lists every
    check with its name, whether it passed and a sentence saying why.
  - C(file_exists) - each of O(files) exists (a path also listed in O(documents) is checked as a document instead).
  - C(document_valid) - each of O(documents) parses as JSON or YAML and holds its required keys (schema, validate
    command), validated as M(lastgood.rollback.config_update) validates new content.
  - C(manifest_match) - the live paths match the manifest of O(backup) (SHA-256, size, mode, owner, symlink
    targets; what M(lastgood.rollback.backup_verify) reports with C(against=live)), counting only differences at or
    below O(backup_paths).
  - C(health_command) and C(health_url) - the command exits 0 and the URL answers 200, with O(health_retries)
    retries O(health_delay) seconds apart; then, with O(monitor_seconds), C(health_monitor) - both keep passing,
    checked every O(monitor_interval) seconds through the window.  The first failure fails it.
  - C(stability_window) - with O(stability_seconds), the window after the change in which the application must be
    stable - every O(stability_interval) seconds the health checks pass and, with O(metrics_url), the application's
    metrics are within their thresholds - session success rate above O(stability_min_success_rate), error rate
    below O(stability_max_error_rate), security violations at most O(stability_max_violations) (the runbook's
    post-rollback stability checks).  A metric the endpoint does not report is not judged; an endpoint that does
    not answer with metrics, or with none of them, fails it.  The first failed reading fails it.
  - C(test_command) - the command exits 0.
  - With O(metrics_url), the result holds the last reading of the metrics (RV(metrics)) - read once after the
    checks when there was no stability window - for the status report.
  - Sets the fact C(verify_result) (host, ok, checks, failed_checks, backup, checksums_verified, mismatches) and
    publishes C(lastgood_verify) (per host - ok, failed_checks) with the run's custom stats, as the
    C(lastgood.rollback.verify) role did.  The module runs through an action plugin of the same name, which adds
    the host name, the fact and the stats.
  - Ansible drops the facts and stats of a failed task; register the task as C(verify_result) to keep the result
    when it fails (its top-level keys are those of the fact).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.read_only
  - lastgood.rollback.attributes.store
  - lastgood.rollback.documents
attributes:
  check_mode:
    support: full
    details: Files, documents, the manifest and the health URL are checked in check mode too; the health, test and
      monitoring commands and the stability window are not run (RV(not_run) names them); the metrics are read.
options:
  files:
    description: Paths that must exist.
    type: list
    elements: path
    default: []
  backup:
    description:
      - The backup the live paths must match - V(lastgood), V(latest), an id or a checkpoint name.
      - Empty skips the C(manifest_match) check.
    type: str
    default: ''
  backup_paths:
    description: Only differences at or below these paths count.  Empty counts every path the backup holds.
    type: list
    elements: path
    default: []
  health_command:
    description: A command (argument list, no shell) that exits 0 when the application is healthy.  Empty skips it.
    type: list
    elements: str
    default: []
  health_url:
    description: A URL, fetched from the host, that must answer 200.  Empty skips it.
    type: str
    default: ''
  health_retries:
    description: Retries of each health check (it is tried this many times plus one).
    type: int
    default: 3
  health_delay:
    description: Seconds between tries.
    type: int
    default: 2
  monitor_seconds:
    description:
      - After the health checks passed, keep checking them for this many seconds (0 - no monitoring window).
    type: int
    default: 0
  monitor_interval:
    description: Seconds between the checks of the monitoring window.
    type: int
    default: 10
  metrics_url:
    description:
      - The application's metrics endpoint, answering in the Prometheus text format (read with the parser of the
        C(lastgood.rollback.health_metrics) event source).  Empty reads no metrics.
    type: str
    default: ''
  metric_names:
    description:
      - The metric name (or C(name{label="value"}) selector) in the endpoint's answer of C(session_success_rate),
        C(error_rate) (both percent) and C(security_violations) (a count).  Where several series match, the
        largest value counts.  Empty means the demo application's names.
    type: dict
    default:
      session_success_rate: app_session_success_rate_percent
      error_rate: app_error_rate_percent
      security_violations: app_security_violations
  stability_seconds:
    description: Length of the stability window after the health checks passed (0 - no window).
    type: int
    default: 0
  stability_interval:
    description: Seconds between the readings of the stability window.
    type: int
    default: 10
  stability_min_success_rate:
    description: The session success rate (percent) every reading of the window must be above.
    type: float
    default: 95
  stability_max_error_rate:
    description: The error rate (percent) every reading of the window must be below.
    type: float
    default: 1
  stability_max_violations:
    description: The most security violations a reading of the window may report.
    type: float
    default: 0
  test_command:
    description: A command (argument list, no shell) that must exit 0.  Empty skips it.
    type: list
    elements: str
    default: []
  fail:
    description: Fail when a check fails.  V(false) only reports; RV(ok) tells the outcome.
    type: bool
    default: true
  publish:
    description:
      - Set the fact C(verify_result) and publish C(lastgood_verify) with the run's custom stats.
      - V(false) for a check that is not the run's verification, such as a level waiting for its application to
        be healthy again.
    type: bool
    default: true
seealso:
  - module: lastgood.rollback.backup_verify
  - module: lastgood.rollback.config_update
  - module: lastgood.rollback.preflight
'''

EXAMPLES = r'''
- name: Verify the application after the rollback
  lastgood.rollback.verify:
    set: app
    files: [/srv/app/app.env.example]
    documents:
      - path: /srv/app/config.yaml
        required_keys: [partyMode.enabled, partyMode.maxAgents]
      - path: /srv/app/custom_modes.json
        required_keys: [customModes]
    backup: lastgood
    backup_paths: [/srv/app/config.yaml, /srv/app/custom_modes.json]
    health_command: [/srv/app/bin/appctl, health]
    monitor_seconds: 60
    test_command: [/srv/app/bin/appctl, check]
  register: verify_result

- name: Verify after a rollback, then watch the application stay stable for five minutes
  lastgood.rollback.verify:
    health_url: http://127.0.0.1:8080/health
    metrics_url: http://127.0.0.1:8080/metrics
    stability_seconds: 300
    stability_interval: 30
    stability_max_error_rate: 2
  register: verify_result

- name: Only report whether the live configuration still matches the checkpoint
  lastgood.rollback.verify:
    set: app
    backup: pre-upgrade-42
    fail: false
'''

RETURN = r'''
host:
  description: The inventory host name (the host's own name when the module runs without its action plugin).
  returned: always
  type: str
ok:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Every check in the order run - C(name), C(ok), C(message), and C(path) or C(backup) where it has one.
  returned: always
  type: list
  elements: dict
  sample: [{name: document_valid, path: /srv/app/config.yaml, ok: true,
            message: /srv/app/config.yaml parses and holds partyMode.enabled}]
failed_checks:
  description: The names of the checks that failed.
  returned: always
  type: list
  elements: str
backup:
  description: The id of the backup the live paths were compared with, or empty.
  returned: always
  type: str
checksums_verified:
  description: Whether the live paths matched the backup's manifest; null when O(backup) is empty.
  returned: always
  type: bool
mismatches:
  description: The differences from the backup that count (C(path), C(problem)).
  returned: always
  type: list
  elements: dict
not_run:
  description: Checks not run because of check mode (C(health_command), C(health_monitor), C(stability_window),
    C(test_command)).
  returned: always
  type: list
  elements: str
metrics:
  description: The last reading of the metrics of O(metric_names) the endpoint reported, by metric; empty without
    O(metrics_url) or when it could not be read.
  returned: always
  type: dict
  sample: {session_success_rate: 99, error_rate: 0.5, security_violations: 0}
metrics_error:
  description: Why the metrics could not be read after the checks, or null.
  returned: always
  type: str
stability:
  description: The stability window - C(ok), C(seconds), C(interval), C(readings) (taken until the first that
    failed); null when there was none.
  returned: always
  type: dict
thresholds:
  description: What the stability window judges, by metric - C(relation) (C(>), C(<), C(<=)) and C(value).
  returned: always
  type: dict
msg:
  description: How many checks passed, or the failed checks one per line.
  returned: always
  type: str
ansible_facts:
  description: C(verify_result) - C(host), C(ok), C(checks), C(failed_checks), C(backup), C(checksums_verified),
    C(mismatches).
  returned: success
  type: dict
'''

import socket

from ansible_collections.lastgood.rollback.plugins.module_utils import _checks, _config, _verify
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule
from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import store_argument_spec


def main():
    module = ResultModule(
        argument_spec=store_argument_spec(
            files=dict(type='list', elements='path', default=[]),
            documents=_config.DOCUMENT_SPEC,
            backup=dict(type='str', default=''),
            backup_paths=dict(type='list', elements='path', default=[]),
            health_command=dict(type='list', elements='str', default=[]),
            publish=dict(type='bool', default=True),
            health_url=dict(type='str', default=''),
            health_retries=dict(type='int', default=3),
            health_delay=dict(type='int', default=2),
            monitor_seconds=dict(type='int', default=0),
            monitor_interval=dict(type='int', default=10),
            metrics_url=dict(type='str', default=''),
            metric_names=dict(type='dict', default=_verify.METRIC_NAMES),
            stability_seconds=dict(type='int', default=0),
            stability_interval=dict(type='int', default=10),
            stability_min_success_rate=dict(type='float', default=95),
            stability_max_error_rate=dict(type='float', default=1),
            stability_max_violations=dict(type='float', default=0),
            test_command=dict(type='list', elements='str', default=[]),
            fail=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    result = dict(_verify.verify(module.params, check_mode=module.check_mode), host=socket.gethostname())
    if not result['ok'] and module.params['fail']:
        module.fail_json(msg=_checks.failure_message('Verification failed on %s:' % socket.gethostname(),
                                                     result['checks']), **result)
    result['msg'] = 'all %d check(s) passed' % len(result['checks'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
