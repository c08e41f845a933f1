#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: backup
short_description: Take a verified backup of files and directories, published atomically
version_added: 0.1.0
description:
  - Copies O(paths) into a new backup of the backup set, hashing every file with SHA-256 in the same read pass.
  - The backup is built in a hidden staging directory, flushed to disk, verified against its manifest and only
    then renamed into place, so a backup either does not exist or is complete.  Leftovers of an interrupted run
    are removed by the next run and never listed.
  - Files keep their modes (and owners when run as root); symlinks are stored as symlinks, hardlinks within the
    tree, fifos and empty directories are kept, sparse files stay sparse.  Extended attributes of every namespace
    (POSIX ACLs, SELinux labels and file capabilities included) are recorded in the manifest.  Sockets and devices
    are left out (see RV(special_files)).
  - When nothing changed since the latest complete backup no new backup is taken and the task reports no change,
    unless O(force=true) or a new checkpoint O(name) demands one.
  - Backed-up contents never appear in the results.
  - O(state=absent) removes one backup or checkpoint (O(backup) or O(name)), see O(state).
  - O(pinned) pins or unpins the backup the task takes or reports, or the existing backup O(backup).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.store
  - lastgood.rollback.names
attributes:
  check_mode:
    support: full
    details: Check mode scans O(paths) and reports what would be backed up (RV(files), RV(bytes), RV(reused)) without
      writing anything.  RV(removed) lists the backups retention would remove now, before the new backup exists.
      With O(state=absent), check mode reports whether the backup would be removed (and fails as the real run would
      when it is refused).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: A second run with the same arguments and an unchanged tree reports no change; O(force=true) always takes
      a new backup.
options:
  state:
    description:
      - V(present) takes a backup of O(paths), or with O(backup) changes the marks of an existing one (O(pinned),
        O(mark_lastgood)).
      - V(absent) removes the backup or checkpoint named by O(backup) (an id or a checkpoint name) or O(name),
        complete or not, pinned or not.  It refuses the C(LASTGOOD) backup and the newest complete backup unless
        O(force=true); a forced removal of the C(LASTGOOD) backup removes the C(LASTGOOD) mark first, so it never
        names a missing backup.  A C(backup_remove) event is written to O(audit_log) before anything is removed
        (nothing is removed without it).
      - The removal is crash-safe - the backup directory is renamed to a hidden C(.deleting-<id>) name in one atomic
        step (then the set directory is flushed) and only then deleted, so an interrupted removal leaves the backup
        either complete or gone; the next run of any store module deletes what is left.  Backups taken
        incrementally from the removed one keep their files (they are hardlinks) and verify as before.
      - A backup that does not exist reports no change.
    type: str
    choices: [present, absent]
    default: present
  backup:
    description:
      - An existing backup, by id or checkpoint name - the one O(state=absent) removes, or the one whose marks
        O(pinned) and O(mark_lastgood) change when no O(paths) are given.
    type: str
  pinned:
    description:
      - V(true) pins the backup (retention keeps it until it is unpinned), V(false) unpins it - a named checkpoint
        too, which is pinned when it is taken.  Not set, the pin is left as it is.
      - Applies to the backup the task takes or reports (O(paths)), or to O(backup).
    type: bool
  paths:
    description:
      - Absolute paths of the files and directories to back up.  They must not overlap or lie inside the store.
      - Required with O(state=present) unless O(backup) names an existing backup.
      - A path that does not exist is recorded as absent (a restore removes it) and listed in RV(missing).
      - When O(backup_root) lies inside one of the paths, the store itself is left out.
    type: list
    elements: path
  name:
    description:
      - Make a named checkpoint with this id instead of a time-stamped one.  Checkpoints are pinned, so retention
        keeps them.
      - 1 to 100 letters, digits, C(.), C(_) and C(-), starting with a letter or digit.
      - An existing checkpoint is never overwritten; if the paths still match it the task reports no change,
        otherwise it fails.
      - With O(state=absent), the checkpoint to remove (as O(backup)).
    type: str
  incremental:
    description:
      - Hardlink files unchanged since the latest complete backup instead of copying them, and reuse their digests.
      - A file is unchanged when its size, mtime, mode and owner match (and its content too with
        O(checksum=always)).
    type: bool
    default: true
  exclude:
    description:
      - Shell-style patterns of entries to leave out, matched against the path relative to each of O(paths) and
        against the entry's name, for example V(*.log), V(cache) or V(tmp/*).
      - Recorded in the manifest, so a later drift check or restore leaves the excluded entries alone.
    type: list
    elements: str
    default: []
  checksum:
    description:
      - V(auto) decides whether a file changed from its size, mtime, mode and owner.
      - V(always) hashes every live file first and compares content, for trees where a file can change without
        its mtime changing.
    type: str
    choices: [auto, always]
    default: auto
  rehash:
    description:
      - With O(incremental=true), a file hardlinked from the previous backup is normally re-read and checked
        against that backup's manifest only when its inode changed after that backup was sealed (its ctime is
        newer than the previous C(MANIFEST.json) after a write, chmod, chown, utime, link or unlink), as restic
        and rsync trust unchanged metadata.  That makes an incremental backup of an unchanged tree cheap.
      - V(true) re-reads every hardlinked file, which also catches damage that leaves the inode's times alone
        (bit rot on the disk, a clock stepped backwards).  M(lastgood.rollback.backup_verify) checks a whole
        backup the same way.
    type: bool
    default: false
  keep_last:
    description:
      - After the backup, remove complete backups beyond the newest O(keep_last).
      - Retention never removes the C(LASTGOOD) backup, a pinned one or the newest complete one.  A backup is kept
        when either O(keep_last) or O(keep_days) keeps it.
    type: int
  keep_days:
    description: After the backup, remove complete backups older than this many days (see O(keep_last)).
    type: int
  keep_runs:
    description:
      - After the backup, release the pins of runs' own checkpoints (C(run-<run id>), which every run playbook takes
        and pins) once the run succeeded (its run state in O(state_dir) says C(finished)) and O(keep_runs) newer run
        checkpoints exist in the set.  A released run checkpoint is then removed unless O(keep_last) or
        O(keep_days) keeps it (or it is the C(LASTGOOD) or the newest complete backup).
      - The checkpoint of a run that failed, is still running, or has no run state or a corrupt one stays pinned.  An
        I/O error reading the run states fails the task before anything is released or removed.
      - Checkpoints named by hand and C(pre-restore-<id>) backups are never released; unpin them with
        O(pinned=false) or remove them with O(state=absent).
    type: int
  state_dir:
    description: Directory of the run states O(keep_runs) reads (as in M(lastgood.rollback.run)).
    type: path
    default: /var/lib/lastgood/runs
  audit_log:
    description: Audit log that records every removal with O(state=absent) (see M(lastgood.rollback.audit_log)).
    type: path
    default: /var/log/lastgood/audit.jsonl
  mark_lastgood:
    description:
      - Record the backup as the last known good one (the C(LASTGOOD) file of the set), which restores use by
        default.  When nothing changed, the existing latest backup is marked.
    type: bool
    default: false
  force:
    description:
      - Take a new backup even when nothing changed since the latest one.
      - With O(state=absent), remove the backup even when it is the C(LASTGOOD) or the newest complete one.
    type: bool
    default: false
seealso:
  - module: lastgood.rollback.backup_info
  - module: lastgood.rollback.backup_verify
  - module: lastgood.rollback.audit_log
'''

EXAMPLES = r'''
- name: Back up the application config before the change
  lastgood.rollback.backup:
    paths:
      - /etc/myapp
      - /srv/myapp/current
    exclude:
      - "*.log"
      - cache
    keep_last: 10
  register: app_backup

- name: Take a pinned checkpoint that retention keeps
  lastgood.rollback.backup:
    paths: [/etc/myapp]
    set: myapp
    name: "pre-upgrade-{{ release }}"

- name: Mark the config that passed its health check as last known good
  lastgood.rollback.backup:
    paths: [/etc/myapp]
    mark_lastgood: true

- name: Back up, keeping the checkpoints of the newest 10 runs and the 20 newest backups
  lastgood.rollback.backup:
    paths: [/etc/myapp]
    keep_last: 20
    keep_runs: 10

- name: Let retention remove a checkpoint that is no longer needed
  lastgood.rollback.backup:
    backup: pre-upgrade-41
    set: myapp
    pinned: false

- name: Remove a checkpoint now (audited)
  lastgood.rollback.backup:
    state: absent
    backup: pre-upgrade-40
    set: myapp
'''

RETURN = r'''
id:
  description: Id of the new backup, or of the existing backup that already matches the paths (or named by
    O(backup), or removed with O(state=absent)).  Null in check mode for a time-stamped backup (its id is chosen when
    it is written).
  returned: always
  type: str
  sample: 20261121T231500Z-3fa2c1
new_backup:
  description: Whether a new backup was (or in check mode would be) taken.
  returned: when O(state=present)
  type: bool
verified:
  description:
    - Whether this run verified the backup - true for a new backup, whose staged copy matched its manifest (every
      entry's presence, type, size, mode, owner, mtime and target; content hashed as it was copied, files
      hardlinked from the previous backup re-hashed) before it was published.  A staged copy that does not match
      is never published, so a new backup that exists is a verified one; no second verify is needed.
    - False when an existing backup was reported instead (nothing changed since it was taken, or the checkpoint
      already existed; it was verified when it was taken, M(lastgood.rollback.backup_verify) re-reads it) and in
      check mode.
  returned: when O(state=present)
  type: bool
path:
  description:
    - Directory of the backup (null in check mode for a time-stamped backup).
    - As for every result with a C(path), Ansible adds the directory's own attributes (C(mode), C(owner), C(size), ...).
  returned: always
  type: str
  sample: /var/backups/lastgood/default/20261121T231500Z-3fa2c1
manifest:
  description: Path of the backup's C(MANIFEST.json).
  returned: when O(state=present)
  type: str
files:
  description: Number of files in the backup (hardlinks within the tree counted).
  returned: when O(state=present)
  type: int
bytes:
  description: Total size of the files in the backup (a file hardlinked within the tree counted once).
  returned: when O(state=present)
  type: int
reused:
  description: Files hardlinked from the previous backup instead of copied.
  returned: when O(state=present)
  type: int
copied:
  description: Files copied.
  returned: when O(state=present)
  type: int
copied_bytes:
  description: Bytes copied (what the backup added to the store).
  returned: when O(state=present)
  type: int
rehashed:
  description: Files hardlinked from the previous backup that were re-read and checked against its manifest.
  returned: when O(state=present)
  type: int
parent:
  description: The backup files were hardlinked from (incremental base), or null.
  returned: when O(state=present)
  type: str
lastgood:
  description: Whether the backup is the set's C(LASTGOOD) backup now.
  returned: always
  type: bool
pinned:
  description: Whether the backup is pinned (named checkpoints are).
  returned: always
  type: bool
duration:
  description: Seconds the task spent in the store engine.
  returned: when O(state=present)
  type: float
special_files:
  description:
    - Special files (sockets, devices) that were not backed up; the task also warns about them.
    - Named so because a C(skipped) key would make Ansible report the task as skipped.
  returned: when O(state=present)
  type: list
  elements: str
missing:
  description: Entries of O(paths) that do not exist (recorded as absent).
  returned: when O(state=present)
  type: list
  elements: str
removed:
  description: Backups removed by retention, or with O(state=absent) the backup removed (in check mode, those that
    would be).
  returned: always
  type: list
  elements: str
released:
  description: Run checkpoints whose pins O(keep_runs) released (in check mode, would release).
  returned: always
  type: list
  elements: str
forced:
  description: With O(state=absent), whether the removal needed O(force=true) (it removed the C(LASTGOOD) or the newest
    complete backup).
  returned: when O(state=absent)
  type: bool
recovered:
  description:
    - What this run settled or cleaned up before backing up, left by interrupted earlier runs - a restore journal
      rolled forward or back, staging directories, temporary files.  Empty when there was nothing to do (and always
      in check mode, which settles nothing).
  returned: always
  type: list
  elements: str
  sample: ["journal 5f2c9a1e.json: restore of /srv/app rolled forward", ".staging-20261121T231500Z-3fa2c1"]
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from ansible_collections.lastgood.rollback.plugins.module_utils._result import unescape_names
from ansible_collections.lastgood.rollback.plugins.module_utils._store import StoreError
from ansible_collections.lastgood.rollback.plugins.module_utils._store_module import (
    run_store_module,
    store_argument_spec,
)


def take_backup(module, store):
    params = module.params
    if params['state'] == 'absent':
        return remove_backup(module, store)
    if not module.check_mode:
        # before anything else: settle an interrupted restore's journal and remove leftovers
        store.recover()
    if params['paths']:
        result = store.create(unescape_names(params['paths']), name=params['name'], incremental=params['incremental'],
                              excludes=params['exclude'], checksum=params['checksum'],
                              mark_lastgood=params['mark_lastgood'], force=params['force'],
                              check_mode=module.check_mode, rehash=params['rehash'])
    else:
        result = existing_backup(module, store)
    for warning in result.pop('warnings'):
        module.warn(warning)
    for path in result['missing']:
        module.warn('%s does not exist; the backup records it as absent' % path)
    if params['pinned'] is not None and result['id'] is not None and result['pinned'] != params['pinned']:
        if not module.check_mode:
            change = store.pin if params['pinned'] else store.unpin
            change(result['id'])
        result['pinned'] = params['pinned']
        result['changed'] = True
    try:
        result['removed'] = store.retention(keep_last=params['keep_last'], keep_days=params['keep_days'],
                                            keep_runs=params['keep_runs'], state_dir=params['state_dir'],
                                            check_mode=module.check_mode)
    except StoreError as exc:
        raise StoreError('the backup succeeded (%s, id %s), then retention failed: %s'
                         % ('new' if result['new_backup'] else 'unchanged', result['id'], exc)) from exc
    result['released'] = list(store.released)
    result['recovered'] = list(store.recovered)
    result['changed'] = (result['changed'] or bool(result['removed']) or bool(result['released'])
                         or bool(result['recovered']))
    return result


def existing_backup(module, store):
    """The result for the existing backup O(backup) (no paths): its marks may change, nothing is backed up."""
    info = store.resolve(module.params['backup'])
    marked = False
    if module.params['mark_lastgood'] and not info['lastgood']:
        marked = module.check_mode or store.mark_lastgood(info['id'])
    return {
        'changed': bool(marked), 'new_backup': False, 'verified': False, 'id': info['id'], 'path': info['path'],
        'manifest': info['manifest'], 'files': info['files'], 'bytes': info['bytes'], 'reused': 0, 'copied': 0,
        'copied_bytes': 0, 'rehashed': 0, 'parent': info['parent'], 'lastgood': info['lastgood'] or bool(marked),
        'pinned': info['pinned'], 'duration': 0.0, 'special_files': [], 'missing': [], 'warnings': [],
    }


def remove_backup(module, store):
    """O(state=absent): remove one backup, audited before anything is removed."""
    params = module.params
    ref = params['backup'] or params['name']

    def audit(detail):
        try:
            _audit.append(params['audit_log'], 'backup_remove', level='notice', detail=detail)
        except OSError as exc:
            raise _audit.AuditError('cannot append to %s: %s' % (params['audit_log'], exc)) from exc

    try:
        result = store.remove(ref, force=params['force'], check_mode=module.check_mode, audit=audit)
    except _audit.AuditError as exc:
        raise StoreError('the removal of backup %s could not be recorded in the audit log, so nothing was removed: '
                         '%s' % (ref, exc)) from exc
    forced = result['changed'] and (result['lastgood'] or result['newest'])
    return {
        'changed': result['changed'], 'id': result['id'], 'path': result['path'],
        'removed': [result['id']] if result['changed'] else [], 'released': [],
        'lastgood': False if result['changed'] else result['lastgood'],
        'pinned': False if result['changed'] else result['pinned'], 'forced': forced,
        'recovered': list(store.recovered),
    }


def main():
    run_store_module(store_argument_spec(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        backup=dict(type='str'),
        pinned=dict(type='bool'),
        paths=dict(type='list', elements='path'),
        name=dict(type='str'),
        incremental=dict(type='bool', default=True),
        exclude=dict(type='list', elements='str', default=[]),
        checksum=dict(type='str', choices=['auto', 'always'], default='auto'),
        rehash=dict(type='bool', default=False),
        keep_last=dict(type='int'),
        keep_days=dict(type='int'),
        keep_runs=dict(type='int'),
        state_dir=dict(type='path', default='/var/lib/lastgood/runs'),
        audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        mark_lastgood=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
    ), take_backup,
        mutually_exclusive=[('paths', 'backup'), ('name', 'backup')],
        required_if=[('state', 'present', ('paths', 'backup'), True), ('state', 'absent', ('backup', 'name'), True)])


if __name__ == '__main__':
    main()
