#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: feature_flag
short_description: Turn features off on a host in one task - override, config, reload, read back, sessions (Level 1)
version_added: 0.2.0
description:
  - For each of O(features), in order - writes C(NAME=false) into the environment override file O(override_file)
    (it wins over the config file; the last line setting C(NAME) is replaced, or one is added) and/or sets the
    feature's key to C(false) in O(config_file) (validated, backed up into the store and written atomically, as
    M(lastgood.rollback.config_update) does); makes the application read its flags again (O(apply_command)); reads
    the flag back as the application reports it (O(readback_url) or O(readback_command)) until it reads C(false);
    marks every session the audit log shows active, and every session O(end_sessions_command) ended, terminated
    (C(session_end)); records C(feature_disabled).
  - When the files already turn the feature off, the flag is read first and the application is asked to read its
    flags again only when it does not report the feature off.
  - The action of the C(lastgood.rollback.level1_feature_flag) role and of the playbook
    C(lastgood.rollback.rollback_level1); the Level 4 full restore turns its features off with it too.
  - Sets the facts C(level1_feature_flag_result) (the last feature's summary) and C(level1_feature_flag_results)
    (every summary by feature).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
attributes:
  check_mode:
    support: full
    details: Predicts the changes of the override and config files, reads the flag once and the audit log's active
      sessions; writes nothing and runs no command but the read-back command.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds every flag off and no session left to end, and reports no change.
options:
  features:
    description: The features to turn off, one after the other.
    type: list
    elements: str
    required: true
  via:
    description: V(override) writes the environment override file, V(config) sets the key in the config file.
    type: list
    elements: str
    choices: [override, config]
    default: [override]
  override_file:
    description: The environment override file (created when missing).
    type: path
    default: /srv/app/app.env
  override_name:
    description: The override's variable; empty derives it from the feature (C(partyMode) - C(PARTY_MODE_ENABLED)).
    type: str
    default: ''
  override_mode:
    description: The override file's mode (octal, as a string).
    type: str
    default: '0644'
  config_file:
    description: The JSON or YAML config file.
    type: path
    default: /srv/app/config.yaml
  config_key:
    description: The flag's key in the config file; empty is C(<feature>.enabled).
    type: str
    default: ''
  backup_root:
    description: The store the config file is backed up into before it changes.
    type: path
    default: /var/backups/lastgood
  backup_set:
    description: The store's set for those backups.
    type: str
    default: app-config
  apply_command:
    description: Makes the application read its flags again; empty when it reads them on every request.
    type: list
    elements: str
    default: []
  readback_url:
    description: A URL (fetched from the host) answering the application's flags as JSON; empty uses
      O(readback_command).
    type: str
    default: ''
  readback_command:
    description: A command printing the application's flags as JSON.
    type: list
    elements: str
    default: []
  readback_keys:
    description: The keys leading to the flag in that document, each a literal key; empty is C(flags) and the
      config key.
    type: list
    elements: str
    default: []
  readback_retries:
    description: Retries of the read-back until the flag reads off (it is read this many times plus one).
    type: int
    default: 10
  readback_delay:
    description: Seconds between the reads.
    type: int
    default: 1
  audit_log:
    description: The audit log whose active sessions are ended, and which records the events.
    type: path
    default: /var/log/lastgood/audit.jsonl
  end_sessions_command:
    description: Ends the application's own sessions; its JSON output's C(ended) list names them.  Empty skips.
    type: list
    elements: str
    default: []
  session_reason:
    description: The reason recorded with each ended session.
    type: str
    default: feature_disabled
  run_id:
    description: The run this belongs to, recorded with every audit event.
    type: str
    default: ''
seealso:
  - module: lastgood.rollback.config_update
  - module: lastgood.rollback.audit_log
'''

EXAMPLES = r'''
- name: Turn Party Mode off through the override file and the config file
  lastgood.rollback.feature_flag:
    features: [partyMode]
    via: [override, config]
    apply_command: [/srv/app/bin/appctl, reload]
    readback_command: [/srv/app/bin/appctl, flags]
    end_sessions_command: [/srv/app/bin/appctl, sessions, end, --reason, feature_disabled]
    run_id: "{{ lastgood_run_id }}"
'''

RETURN = r'''
features:
  description: Per feature - C(feature), C(via), C(reads) (the flag as the application reported it last; null when
    it was not read), C(sessions_terminated) (the session ids), C(changed).
  returned: always
  type: list
  elements: dict
ansible_facts:
  description: C(level1_feature_flag_result) (the last feature's summary) and C(level1_feature_flag_results) (the
    summaries by feature).
  returned: success
  type: dict
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _config, _feature
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule, params_or_defaults


def main():
    argument_spec = dict(
        features=dict(type='list', elements='str', required=True),
        via=dict(type='list', elements='str', choices=['override', 'config'], default=['override']),
        override_file=dict(type='path', default='/srv/app/app.env'),
        override_name=dict(type='str', default=''),
        override_mode=dict(type='str', default='0644'),
        config_file=dict(type='path', default='/srv/app/config.yaml'),
        config_key=dict(type='str', default='', no_log=False),
        backup_root=dict(type='path', default='/var/backups/lastgood'),
        backup_set=dict(type='str', default='app-config'),
        apply_command=dict(type='list', elements='str', default=[]),
        readback_url=dict(type='str', default=''),
        readback_command=dict(type='list', elements='str', default=[]),
        readback_keys=dict(type='list', elements='str', default=[], no_log=False),
        readback_retries=dict(type='int', default=10),
        readback_delay=dict(type='int', default=1),
        audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        end_sessions_command=dict(type='list', elements='str', default=[]),
        session_reason=dict(type='str', default='feature_disabled'),
        run_id=dict(type='str', default=''),
    )
    module = ResultModule(argument_spec=argument_spec, supports_check_mode=True)
    params = params_or_defaults(module.params, argument_spec)
    summaries = []
    try:
        for feature in params['features']:
            summaries.append(_feature.turn_off(params, feature, check_mode=module.check_mode))
    except (_feature.FeatureError, _config.ConfigError, _audit.AuditError, OSError, ValueError) as exc:
        done = '; '.join('%s off' % item['feature'] for item in summaries)
        module.fail_json(msg='%s%s' % (exc, ('  Done before: %s.' % done) if done else ''), features=summaries)
    facts = {'level1_feature_flag_result': summaries[-1] if summaries else {},
             'level1_feature_flag_results': dict((item['feature'], item) for item in summaries)}
    changed = any(item['changed'] for item in summaries)
    module.exit_json(changed=changed, features=summaries, ansible_facts=facts,
                     msg='%s %s off' % (', '.join(params['features']), 'turned' if changed else 'already'))


if __name__ == '__main__':
    main()
