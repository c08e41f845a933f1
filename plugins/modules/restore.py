#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: restore
short_description: Restore paths from a verified backup, all or nothing, with undo
version_added: 0.1.0
description:
  - Restores the paths of a backup (all of them, or the O(paths) given) to exactly what the backup holds - content,
    type, mode, mtime, symlink targets, hardlinks, and owners when run as root - and removes what the backup does
    not hold.
  - What is restored is verified against the backup manifest before anything live is touched - each file is hashed
    as it is copied, every byte read once - and a mismatch refuses the restore. Check mode, and a run that finds
    nothing to change, verify the whole backup.
  - Each target is rebuilt beside itself on the same file system, flushed to disk, checked, and swapped in
    atomically (C(renameat2) C(RENAME_EXCHANGE) where the kernel and file system allow it, else two renames
    guarded by a journal).  A target that is a mount point keeps its directory and has its top-level entries
    swapped, also under the journal.  After the swap the targets are verified again (O(verify_after)); if they do
    not match, what the targets hold then (with anything another process wrote there meanwhile) is kept as a pinned
    backup named C(rejected-<id>), and everything is rolled back.
  - Paths below a backed-up directory are reached from it without following symlinks.  Where a directory above a
    requested path is, live, a symlink (or another non-directory) and the backup holds a directory there, that
    directory itself is restored, replacing the symlink as an entry; a warning says so.
  - A crash or I/O error at any moment leaves every target exactly as before or exactly restored - never a mix -
    once the journal has been settled.  Every run settles a journal an interrupted run left before doing anything
    else and reports it in RV(recovered).
  - The live version a restore replaces is kept as a backup named C(pre-restore-<id>) (O(keep_displaced)), which
    O(undo=true) puts back.  A restore that fails and rolls back removes it again (it equals what is live).
  - Entries the backup excluded (its C(exclude) patterns) are left as they are in the live tree, and so are live
    sockets and device nodes below a restored directory (no backup holds them); each is named in a warning.
  - With O(documents), each listed document the restore writes is first read from the backup (checked against the
    manifest's SHA-256) and validated - it must parse and pass its required keys, schema and validate command, as
    M(lastgood.rollback.config_update) validates new content.  An invalid document, or one the backup does not hold
    (restoring would remove it), fails the task before anything is changed.  Listed documents the restore does not
    write (outside O(paths)) are named in a warning and not validated.
  - See the collection's C(docs/restore.md) for the journal format and how to recover by hand.
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.store
  - lastgood.rollback.names
  - lastgood.rollback.documents
attributes:
  check_mode:
    support: full
    details: Check mode validates O(documents) (their validate commands run on private copies), verifies the backup
      and returns the plan (RV(plan)) without writing anything; a journal left by an interrupted run is reported in
      RV(recovered) but not settled.
  diff_mode:
    support: full
    details: Shows before and after text of small text files (up to 64 KiB, UTF-8, no NUL bytes); other files are
      only named.  The texts are the live and backed-up contents, secrets included - set the task keyword C(diff) to V(false)
      for paths holding secrets.
  idempotent:
    support: full
    details: A second identical restore finds the targets matching the backup and reports no change.
options:
  id:
    description:
      - The backup to restore - V(lastgood) (the set's C(LASTGOOD) backup), V(latest) (the newest complete
        backup), a backup id or a checkpoint name.
      - When omitted, the C(LASTGOOD) backup.  Not allowed with O(undo=true).
    type: str
    aliases: [backup]
  paths:
    description:
      - Restore only these paths.  Each must be one of the backup's paths or lie inside one of them (restore one
        component of an application, for example).  Paths must not overlap.
      - A path inside the backup that the backup does not hold is removed (it did not exist when the backup was
        taken).
      - With O(undo=true), a subset of the paths the last restore changed.
      - Default is every path of the backup.
    type: list
    elements: path
  missing:
    description:
      - What to do with a path of O(paths) the backup does not hold (neither one of its paths nor inside one).
      - V(fail) fails the task before anything changes.
      - V(skip) leaves such paths as they are and names them in RV(skipped_paths) and a warning; the task still
        fails when the backup holds none of O(paths).
    type: str
    choices: [fail, skip]
    default: fail
  keep_displaced:
    description:
      - Keep the live version that the restore replaces as a pinned backup named C(pre-restore-<id>) (C(pre-undo-<id>)
        for an undo), taken just before the swap.  Only this makes O(undo=true) possible.
      - Pinned backups are kept by retention until unpinned.
    type: bool
    default: true
  undo:
    description:
      - Put back what the last completed restore of this set displaced (its C(pre-restore-<id>) backup), for the
        paths it changed.  The last restore is recorded in the C(LASTRESTORE) file of the set.
      - A second undo finds nothing to change.
    type: bool
    default: false
  verify_after:
    description:
      - After the swap, verify every restored target against the backup manifest; on a mismatch roll back.
      - The check is entry by entry (type, size, mode, owner as root, mtime, symlink target, hardlinks, nothing
        extra), and every file must still be the inode that was hashed while it was written, unchanged since (same
        ctime), so content is proven without reading it again. See C(docs/restore.md).
      - The staged copy is always checked the same way before the swap; this checks the result in place.
    type: bool
    default: true
notes:
  - Modes and mtimes are always restored; owners and groups only when the module runs as root (with C(become)).
  - Missing parent directories of a target are created with mode C(0755) and kept.
  - Restoring needs free space for one more copy of each restored target on its file system.
seealso:
  - module: lastgood.rollback.backup
  - module: lastgood.rollback.backup_verify
  - module: lastgood.rollback.backup_info
'''

EXAMPLES = r'''
- name: Show what restoring the last known good configuration would change
  lastgood.rollback.restore:
    set: myapp
  check_mode: true
  diff: true
  register: restore_plan

- name: Restore the last known good configuration
  lastgood.rollback.restore:
    set: myapp
  become: true

- name: Restore only the application's config directory from a named checkpoint
  lastgood.rollback.restore:
    set: myapp
    id: pre-upgrade-42
    paths:
      - /srv/myapp/current/config

- name: Restore the configuration only if the backed-up documents are valid
  lastgood.rollback.restore:
    set: myapp
    backup: known-good
    paths: [/srv/myapp/config.yaml]
    documents:
      - path: /srv/myapp/config.yaml
        required_keys: [server.port]
        validate: /srv/myapp/bin/myapp --check-config %s

- name: Put back what the last restore replaced
  lastgood.rollback.restore:
    set: myapp
    undo: true
'''

RETURN = r'''
backup_id:
  description: The backup that was restored (for an undo, the C(pre-restore-<id>) backup).
  returned: success
  type: str
  sample: 20261121T231500Z-4f2a9c
undo:
  description: Whether this was an undo.
  returned: success
  type: bool
undone:
  description: For an undo, the restore it undid - the backup it had restored and when it finished.
  returned: success and undo
  type: dict
  sample: {restored: 20261121T231500Z-4f2a9c, finished: '2026-11-21T23:20:04Z'}
displaced_backup:
  description: Id of the backup that keeps the versions this restore replaced, or null when nothing was replaced
    or O(keep_displaced=false).
  returned: always
  type: str
  sample: pre-restore-20261121T231500Z-4f2a9c
paths:
  description:
    - One entry per target path - C(path), C(state), C(verified), C(method).
    - C(state) is V(restored), V(unchanged) (already matched the backup), V(would be restored) (check mode),
      V(untouched) (the restore failed and was rolled back), V(unknown until recovery) (a journal was left; the
      next run settles it) or V(restored, cleanup pending).
    - C(method) is V(swap) (the target was swapped as a whole) or V(files) (a mount point; its top-level entries
      were swapped).
  returned: always
  type: list
  elements: dict
  sample: [{path: /srv/myapp/current, state: restored, verified: true, method: swap}]
plan:
  description: Per target path, the entries the restore adds (C(added)), removes (C(removed)) and changes
    (C(changed), with the reasons - content, size, mode, owner, mtime, type, target).
  returned: success
  type: list
  elements: dict
  sample: [{path: /etc/myapp, added: [], removed: [/etc/myapp/new.conf],
            changed: [{path: /etc/myapp/app.conf, reasons: [content, size, mtime]}]}]
skipped_paths:
  description: The paths of O(paths) the backup does not hold, left as they are (O(missing=skip)).
  returned: success
  type: list
  elements: str
  sample: [/srv/myapp/app.env]
validated_documents:
  description: The documents of O(documents) that were validated from the backup before the restore.
  returned: success
  type: list
  elements: str
recovered:
  description: Interrupted restores this run settled first (in check mode, would settle) - C(journal),
    C(backup_id), C(paths), C(phase_found), C(direction) (V(forward) - the restored version stays - or V(back)),
    C(displaced_backup).
  returned: success
  type: list
  elements: dict
store_recovered:
  description: Leftovers of interrupted backups the store removed first.
  returned: success
  type: list
  elements: str
journal:
  description: On failure, the journal left for recovery (null when the failure left none).
  returned: failure
  type: str
quarantined:
  description:
    - On failure, the restore journals that could not be trusted (unreadable, or naming paths this engine never
      writes) and were moved aside read-only as C(<journal>.corrupt-<UTC time>). Recovery did not act on them;
      the message says where the paths they recorded may be (see docs/restore.md, "A corrupt journal").
  returned: failure
  type: list
  elements: str
msg:
  description: What happened to which path and where the replaced version is, or on failure what state
    everything is in and what to do next.
  returned: always
  type: str
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _config
from ansible_collections.lastgood.rollback.plugins.module_utils._documents import DocumentError, check_restore_documents
from ansible_collections.lastgood.rollback.plugins.module_utils._restore import RestoreError, restore
from ansible_collections.lastgood.rollback.plugins.module_utils._result import unescape_names
from ansible_collections.lastgood.rollback.plugins.module_utils._store import StoreError
from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import (
    run_store_module,
    store_argument_spec,
)


def held_paths(module, store):
    """O(paths) without those the backup does not hold (missing=skip), and those left out; fails when none is held."""
    params = module.params
    paths = unescape_names(params['paths'])
    if not paths or params['missing'] == 'fail' or params['undo']:
        return paths, []
    try:
        info = store.resolve(params['id'])
    except StoreError as exc:
        module.fail_json(msg=str(exc), changed=False, paths=[], journal=None, displaced_backup=None)
    sources = [source.rstrip('/') or '/' for source in info['sources']]
    held = [path for path in paths
            if any(path == source or path.startswith(source.rstrip('/') + '/') for source in sources)]
    skipped = [path for path in paths if path not in held]
    if not held:
        module.fail_json(msg='backup %s holds %s, none of %s; nothing was changed. Name a backup that holds them.'
                         % (info['id'], ', '.join(sources) or 'nothing', ', '.join(paths)),
                         changed=False, paths=[], journal=None, displaced_backup=None)
    if skipped:
        module.warn('backup %s does not hold %s; left as they are' % (info['id'], ', '.join(skipped)))
    return held, skipped


def validate_documents(module, store, paths):
    """The documents the restore writes, validated from the backup; fails the task, nothing changed, when one is not."""
    params = module.params
    if not params['documents']:
        return []
    if params['undo']:
        module.fail_json(msg='documents cannot be validated for an undo (it puts back what the last restore displaced); '
                         'nothing was changed. Undo without documents, then check them with lastgood.rollback.verify.')
    try:
        validated, outside = check_restore_documents(store, params['id'], paths, params['documents'])
    except (DocumentError, RestoreError) as exc:
        module.fail_json(msg=str(exc), changed=False, paths=[], journal=None, displaced_backup=None)
    if outside:
        module.warn('documents %s are not written by this restore (outside its paths) and were not validated'
                    % ', '.join(outside))
    return validated


def run_restore(module, store):
    params = module.params
    paths, skipped = held_paths(module, store)
    validated = validate_documents(module, store, paths)
    try:
        result = restore(store, ref=params['id'], paths=paths,
                         keep_displaced=params['keep_displaced'], verify_after=params['verify_after'],
                         undo=params['undo'], check_mode=module.check_mode, diff=module._diff)
    except RestoreError as exc:
        module.fail_json(msg=str(exc), paths=exc.paths, journal=exc.journal, displaced_backup=exc.displaced_backup,
                         quarantined=exc.quarantined)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    result['validated_documents'] = validated
    result['skipped_paths'] = skipped
    return result


def main():
    run_store_module(store_argument_spec(
        id=dict(type='str', aliases=['backup']),
        paths=dict(type='list', elements='path'),
        keep_displaced=dict(type='bool', default=True),
        undo=dict(type='bool', default=False),
        verify_after=dict(type='bool', default=True),
        documents=_config.DOCUMENT_SPEC,
        missing=dict(type='str', choices=['fail', 'skip'], default='fail'),
    ), run_restore)


if __name__ == '__main__':
    main()
