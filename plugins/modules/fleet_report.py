# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: fleet_report
short_description: Write the fleet report of a run and its post-mortem skeleton on the controller
version_added: 0.1.0
description:
  - An action plugin that runs on the controller only; use it with C(run_once=true) in the run's C(always)
    section, after M(lastgood.rollback.fleet_outcome).
  - Builds each host's record from the run's summary (O(run)), the host's C(lastgood_host) fact (its events of
    the run and its audit chain, as M(lastgood.rollback.run) with C(state=end) leaves them) and what its phases
    returned (O(result_vars)) - each host's variables are read once.  A host without C(lastgood_host.audit)
    (it became unreachable before the end) keeps what the summary knows of it and is listed in
    C(unchecked_hosts).
  - Merges these hosts into the C(report.json) of the same run found in O(controller_dir) - each slice of a
    sliced AWX job is a play of its own on part of the fleet, with the same run id - under the lock file
    C(.report.lock) there, and writes C(report.json), C(report.md) and C(postmortem.md) (a root-cause-analysis
    skeleton whose timeline comes from the hosts' audit events) atomically, mode 0640.  A report of another run
    is replaced.
  - Sets the fact C(report_result), publishes C(lastgood_report) (run_id, outcome, file paths,
    checksums_verified, audit_chains_verified, per-host outcomes) for AWX workflow nodes as C(set_stats) would,
    and returns the report's text (RV(report_md)) for a C(debug) task to show - printing it from the action
    would break a stdout callback that writes JSON (AWX's, C(ansible.posix.json)).
  - Each host's own report (C(<report_dir>/<run_id>/report.md), C(report.json)) is written on the host by
    M(lastgood.rollback.run) with C(state=close), or by the role lastgood.rollback.report from RV(host_documents).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: Check mode builds the report and returns it, and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each report records when it was generated.
options:
  run:
    description: The run's summary, the C(lastgood_fleet) fact of M(lastgood.rollback.fleet_outcome) (its default).
    type: dict
  result_vars:
    description:
      - What each phase returned on a host, by phase (C(preflight), C(checkpoint), C(action), C(verify)) - the
        name of the host's variable holding it; C(name.key) reads a key of a variable.
    type: dict
    default:
      preflight: preflight_result
      checkpoint: lastgood_checkpoint_result.checkpoint_result
      action: lastgood_action_result
      verify: verify_result
  host_var:
    description: The host variable holding the host's run, with its C(events) and C(audit).
    type: str
    default: lastgood_host
  hosts:
    description: The hosts of this play of the run.  Empty means every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
    default: []
  controller_dir:
    description: Directory on the controller for the fleet report and the post-mortem skeleton.
    type: path
    default: ~/.lastgood/reports
  report_dir:
    description: Directory on each host holding its own report; named in C(report_result.host_report).
    type: str
    default: /var/lib/lastgood/reports
  audit_log:
    description: The audit log on each host, named in the post-mortem for hosts whose events could not be read.
    type: str
    default: /var/log/lastgood/audit.jsonl
  host_documents:
    description: Also return each host's own report (RV(host_documents)), for a play that writes them itself.
    type: bool
    default: false
  notify:
    description:
      - Send the run's notice first, exactly as M(lastgood.rollback.fleet_notify) does for O(run) with these
        options - any of M(lastgood.rollback.fleet_notify)'s options but C(run), with its defaults - the
        messages, their files and the webhook post, the facts C(notify_result), C(notify_message),
        C(notify_context), C(notify_files) and C(lastgood_notify) in RV(ansible_stats); then write the report.
        One controller task for both (a run's task budget).
      - Omitted sends nothing, and neither does a run whose outcome is C(paused) (the job that ends it sends the
        notice).  A webhook that does not take the notice fails the task only with C(webhook_required), after
        the report was written.
    type: dict
seealso:
  - module: lastgood.rollback.fleet_outcome
  - module: lastgood.rollback.fleet_notify
'''

EXAMPLES = r'''
- name: Write the post-rollback report and the post-mortem skeleton
  lastgood.rollback.fleet_report:
    controller_dir: "{{ lastgood_controller_dir }}"
    report_dir: "{{ lastgood_report_dir }}"
  run_once: true

- name: Tell people how the run ended, then write the report (one task)
  lastgood.rollback.fleet_report:
    controller_dir: "{{ lastgood_controller_dir }}"
    notify:
      dir: "{{ lastgood_controller_dir }}"
      webhook_url: "{{ lastgood_webhook_url }}"
      webhook_token: "{{ lastgood_webhook_token }}"
  run_once: true
'''

RETURN = r'''
msg:
  description: Where the report was written.
  returned: always
  type: str
report_md:
  description: The fleet report in Markdown, as written to C(report.md).
  returned: always
  type: str
ansible_facts:
  description: The fact set on every host.
  returned: always
  type: dict
  contains:
    report_result:
      description:
        - C(run_id), C(outcome) (of every play of the run merged), C(report_md), C(report_json), C(postmortem),
          C(host_report) (the path on each host), C(checksums_verified) (null when no host's final state was
          compared with a manifest), C(audit_chains_verified).
      type: dict
ansible_stats:
  description: C(lastgood_report), published for the whole play (not per host, not aggregated).
  returned: always
  type: dict
host_documents:
  description: Each checked host's own report, by host name - C(report.json) and C(report.md) texts.
  returned: O(host_documents=true)
  type: dict
'''
