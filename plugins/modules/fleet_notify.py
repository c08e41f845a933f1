# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: fleet_notify
short_description: Write and send the internal and the user-facing messages about a run, once for the fleet
version_added: 0.1.0
description:
  - An action plugin that runs on the controller only; use it with C(run_once=true), after
    M(lastgood.rollback.fleet_outcome).  The role lastgood.rollback.notify is this one task.
  - Renders the internal message (for the team) and the user-facing message for the run's level (1-4, or 0 for
    runs that are not a rollback level) and status from the templates of the role lastgood.rollback.notify, in
    the words of the role's C(vars/main.yml), writes both and a JSON document holding them to O(dir) -
    C(notify-<status>-internal.txt), C(notify-<status>-user.txt), C(notify-<status>.json), each atomically,
    mode 0640 - and posts the JSON document to O(webhook_url) when one is given.
  - The JSON document has C(run_id), C(incident_id), C(level), C(status), C(severity), C(failed_hosts),
    C(stopped_hosts), C(internal) and C(user).
  - The webhook URL and token never appear in the result.  A webhook that does not take the message is a
    warning, and fails the task only with O(webhook_required) - a rollback that worked is not undone because a
    chat server was down.
  - Sets the facts C(notify_context) (the data the templates see as C(n)), C(notify_message) (the JSON
    document), C(notify_files) and C(notify_result) (status, internal, user, files, webhook with attempted,
    posted, status) and publishes C(lastgood_notify) (status, files, webhook_posted) as C(set_stats) would.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
attributes:
  check_mode:
    support: full
    details: Check mode renders the messages and returns them; it writes no file and posts nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run writes its messages again (they name the time) and posts them again.
options:
  run:
    description:
      - The run to tell about, the C(lastgood_fleet) fact of M(lastgood.rollback.fleet_outcome) (its default) -
        C(run_id), C(operation), C(level), C(outcome), C(checkpoint), C(started), C(finished), C(hosts) (by name,
        each with its C(failure); or a list of names, as the start notice passes it), C(succeeded_hosts),
        C(failed_hosts), C(stopped_hosts), C(restored_hosts).
    type: dict
  status:
    description:
      - The status the messages announce.  Empty derives it from the run's outcome (C(success) is C(complete),
        C(failed) and C(partial) are C(failed), anything else C(in_progress)).
    type: str
    choices: ['', started, in_progress, complete, failed]
    default: ''
  reason:
    description: Why the run happened.  Empty uses the level's usual reason.
    type: str
    default: ''
  source:
    description: What the run restored from, in a few words, for example C(backup known-good).
    type: str
    default: ''
  incident_id:
    description: The incident the run belongs to.  Empty makes C(INC-YYYYMMDD-<run id>).
    type: str
    default: ''
  next_update_minutes:
    description: Minutes until the next update the internal message promises (while in progress).
    type: int
    default: 30
  dir:
    description: Directory on the controller for the messages.
    type: path
    default: ~/.lastgood/notifications
  internal_template:
    description:
      - A Jinja2 template to use for the internal message instead of the role's own, found as the
        M(ansible.builtin.template) action finds one; it sees the message data as C(n).
    type: str
    default: ''
  user_template:
    description: A template to use for the user-facing message instead of the role's own.
    type: str
    default: ''
  webhook_url:
    description:
      - URL the JSON document is posted to.
      - Empty takes the environment variable E(LASTGOOD_WEBHOOK_URL) of the controller (what the AWX credential
        type C(Notification webhook) injects, see the AWX guide); empty there too posts nothing.
    type: str
    default: ''
  webhook_token:
    description:
      - "Sent as C(Authorization: Bearer <token>)."
      - Empty takes the environment variable E(LASTGOOD_WEBHOOK_TOKEN) of the controller, but only when the post
        goes to E(LASTGOOD_WEBHOOK_URL) - a credential's token is sent to the credential's endpoint and nowhere
        else.  On AWX, inject both with the credential rather than passing a token as an extra variable, which
        the job's details show to everyone who can see the job.
    type: str
    default: ''
  webhook_timeout:
    description: Seconds to wait for the webhook.
    type: int
    default: 10
  webhook_validate_certs:
    description: Verify the webhook's TLS certificate.
    type: bool
    default: true
  webhook_required:
    description: Fail when the webhook does not accept the message.
    type: bool
    default: false
notes:
  - A template of your own is rendered with Jinja2 and the filters C(dict2items) and C(to_datetime), not with
    every filter Ansible has.
seealso:
  - module: lastgood.rollback.fleet_outcome
  - module: lastgood.rollback.fleet_report
'''

EXAMPLES = r'''
- name: Tell the people who need to know
  lastgood.rollback.fleet_notify:
    dir: "{{ lastgood_controller_dir }}"
    webhook_url: "{{ vault_chat_webhook_url }}"
    webhook_token: "{{ vault_chat_webhook_token }}"
  run_once: true

# On AWX, with the credential "Notification webhook" attached to the job template: the URL and the token
# come from the job's environment (LASTGOOD_WEBHOOK_URL, LASTGOOD_WEBHOOK_TOKEN).
- name: Tell the people who need to know, through the webhook of the job's credential
  lastgood.rollback.fleet_notify:
    dir: "{{ lastgood_controller_dir }}"
  run_once: true
'''

RETURN = r'''
msg:
  description: The status and the first line of the internal message, or why the webhook failed the task.
  returned: always
  type: str
ansible_facts:
  description: The facts set on every host.
  returned: always
  type: dict
  contains:
    notify_context:
      description: The data the templates see as C(n).
      type: dict
    notify_message:
      description: The JSON document written and posted.
      type: dict
    notify_files:
      description: The three files written (or that would be, in check mode).
      type: list
      elements: str
    notify_result:
      description: C(status), C(internal), C(user), C(files), C(webhook) (C(attempted), C(posted), C(status)).
      type: dict
ansible_stats:
  description: C(lastgood_notify), published for the whole play (not per host, not aggregated).
  returned: always
  type: dict
'''
