#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup_verify
short_description: Verify a backup against its manifest, or the live paths against a backup
version_added: 0.1.0
description:
  - With O(against=backup), checks that the backup is exactly what its manifest says - every file's SHA-256,
    size, mode, mtime, owner (when run as root), symlink targets, nothing missing and nothing extra - and that
    C(MANIFEST.json) itself matches the digest recorded in C(MANIFEST.sha256).
  - With O(against=live), reports the drift of the live paths from the backup - entries added, removed or
    changed (content, type, size, mode, owner, xattrs including ACLs, symlink target; mtimes do not count) - which
    is what a restore of that backup would change.  Entries the backup excluded are left out.
  - Fails with a message listing the first mismatches unless O(fail_on_mismatch=false).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.read_only
  - lastgood.rollback.attributes.store
  - lastgood.rollback.names
options:
  backup:
    description:
      - The backup to verify - V(lastgood) (the set's C(LASTGOOD) backup), V(latest) (the newest complete backup),
        a backup id or a checkpoint name.
    type: str
    default: lastgood
  against:
    description:
      - V(backup) verifies the backup against its own manifest (is the backup intact?).
      - V(live) compares the live paths with the backup (what changed since it was taken?).
    type: str
    choices: [backup, live]
    default: backup
  fail_on_mismatch:
    description:
      - Fail the task when a mismatch is found.
      - Set to V(false) to only report; RV(ok) then tells the result.
    type: bool
    default: true
seealso:
  - module: lastgood.rollback.backup
  - module: lastgood.rollback.backup_info
'''

EXAMPLES = r'''
- name: Verify the last known good backup before relying on it
  lastgood.rollback.backup_verify:
    set: myapp

- name: Report what changed on disk since the checkpoint, without failing
  lastgood.rollback.backup_verify:
    set: myapp
    backup: pre-upgrade-42
    against: live
    fail_on_mismatch: false
  register: drift

- name: Show the drift
  ansible.builtin.debug:
    var: drift.drift
'''

RETURN = r'''
ok:
  description: Whether nothing mismatched.
  returned: always
  type: bool
id:
  description: Id of the backup that was checked.
  returned: always
  type: str
  sample: 20261121T231500Z-3fa2c1
path:
  description:
    - Directory of the backup.
    - As for every result with a C(path), Ansible adds the directory's own attributes (C(mode), C(owner), C(size), ...).
  returned: always
  type: str
against:
  description: What was compared (V(backup) or V(live)).
  returned: always
  type: str
mismatches:
  description:
    - Every difference found, as C(path) and C(problem).
    - For O(against=backup) paths are relative to the backup directory (C(data/...), C(MANIFEST.json)), as
      C(sha256sum -c MANIFEST.sha256) run there prints them; for O(against=live) they are absolute.
  returned: always
  type: list
  elements: dict
  sample: [{path: data/etc/myapp/app.conf, problem: 'changed: content'}]
drift:
  description: The live paths' differences from the backup.
  returned: O(against=live)
  type: dict
  contains:
    added:
      description: Live entries the backup does not have.
      type: list
      elements: str
    removed:
      description: Entries of the backup missing from the live paths.
      type: list
      elements: str
    changed:
      description: Entries present in both that differ, with the reasons (content, type, size, mode, owner, target, xattrs).
      type: list
      elements: dict
'''

from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import (
    run_store_module,
    store_argument_spec,
)

SHOWN = 10


def verify_backup(module, store):
    params = module.params
    info = store.resolve(params['backup'])
    result = {'changed': False, 'id': info['id'], 'path': info['path'], 'against': params['against']}
    if params['against'] == 'live':
        drift = store.drift(info['id'])
        result.update(ok=drift['ok'], mismatches=drift['mismatches'],
                      drift={key: drift[key] for key in ('added', 'removed', 'changed')})
    else:
        check = store.verify(info['id'])
        result.update(ok=check['ok'], mismatches=check['mismatches'])
    if not result['ok'] and params['fail_on_mismatch']:
        module.fail_json(msg=failure_message(result, store), **result)
    return result


def failure_message(result, store):
    mismatches = result['mismatches']
    shown = '; '.join('%s: %s' % (item['path'], item['problem']) for item in mismatches[:SHOWN])
    more = ' (and %d more)' % (len(mismatches) - SHOWN) if len(mismatches) > SHOWN else ''
    if result['against'] == 'live':
        return ('the live paths differ from backup %s of set %s in %d place(s): %s%s. Nothing was changed; restore '
                'the backup to undo the drift, or set fail_on_mismatch=false to only report it.'
                % (result['id'], store.set_name, len(mismatches), shown, more))
    return ('backup %s of set %s at %s is damaged: %d mismatch(es) with its manifest: %s%s. Do not restore from it; '
            'nothing was changed. Next: pick another backup (lastgood.rollback.backup_info lists them) and check the '
            'disk under the store.' % (result['id'], store.set_name, result['path'], len(mismatches), shown, more))


def main():
    run_store_module(store_argument_spec(
        backup=dict(type='str', default='lastgood'),
        against=dict(type='str', choices=['backup', 'live'], default='backup'),
        fail_on_mismatch=dict(type='bool', default=True),
    ), verify_backup)


if __name__ == '__main__':
    main()
