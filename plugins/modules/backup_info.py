#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_info
short_description: List backup sets and the backups of a set with their status
version_added: 0.1.0
description:
  - Lists the backup sets under O(backup_root) and every backup of O(set), oldest first, with its status
    (complete, last known good, pinned, incremental parent, creation time, size).
  - A backup whose manifest is missing or does not match its digest is listed as not complete, with the reason.
  - Reads only; backups being written or removed (hidden staging directories) are never listed.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.read_only
  - lastgood.rollback.attributes.store
  - lastgood.rollback.names
options: {}
seealso:
  - module: lastgood.rollback.backup
  - module: lastgood.rollback.backup_verify
'''

EXAMPLES = r'''
- name: List the backups of the application set
  lastgood.rollback.backup_info:
    set: myapp
  register: myapp_backups

- name: Show which backup a restore would use by default
  ansible.builtin.debug:
    msg: "Last known good: {{ myapp_backups.lastgood }}"
'''

RETURN = r'''
sets:
  description: Names of the backup sets under O(backup_root).
  returned: always
  type: list
  elements: str
  sample: [default, myapp]
lastgood:
  description: Id of the set's C(LASTGOOD) backup, or null.
  returned: always
  type: str
latest:
  description: Id of the newest complete backup, or null.
  returned: always
  type: str
backups:
  description: The backups of O(set), oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Backup id (time-stamped, or the checkpoint name).
      type: str
      sample: 20261121T231500Z-3fa2c1
    name:
      description: Checkpoint name, or null for a time-stamped backup.
      type: str
    path:
      description: Directory of the backup.
      type: str
    manifest:
      description: Path of its C(MANIFEST.json).
      type: str
    created:
      description: When it was taken (UTC, ISO 8601), or null when the manifest cannot be read.
      type: str
      sample: '2026-11-21T23:15:00.123456Z'
    complete:
      description: Whether the manifest is present and intact (the backup can be used).
      type: bool
    error:
      description: Why the backup is not complete, or null.
      type: str
    lastgood:
      description: Whether it is the C(LASTGOOD) backup.
      type: bool
    pinned:
      description: Whether retention must keep it.
      type: bool
    parent:
      description: The backup its unchanged files are hardlinked from, or null.
      type: str
    files:
      description: Number of files.
      type: int
    bytes:
      description: Total size of the files.
      type: int
    sources:
      description: The absolute paths that were backed up.
      type: list
      elements: str
    host:
      description: Host name recorded when it was taken.
      type: str
'''

from ansible_collections.lastgood.rollback.plugins.module_utils._store import list_sets
from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import (
    run_store_module,
    store_argument_spec,
)


def describe_store(module, store):
    backups = store.list()
    complete = [info['id'] for info in backups if info['complete']]
    lastgood = [info['id'] for info in backups if info['lastgood']]
    return {
        'changed': False,
        'sets': list_sets(store.backup_root),
        'backups': backups,
        'lastgood': lastgood[0] if lastgood else None,
        'latest': complete[-1] if complete else None,
    }


def main():
    run_store_module(store_argument_spec(), describe_store)


if __name__ == '__main__':
    main()
