#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: config_update
short_description: Change a JSON or YAML file so that it is never left broken
version_added: 0.1.0
description:
  - Changes a JSON or YAML file by whole O(content), or by O(values) at key paths and O(unset) key paths.
  - The new document is validated before anything is written - it must parse, have the O(required_keys),
    satisfy the O(schema) or O(schema_path) and pass the O(validate) command.  An invalid change changes
    nothing and makes no backup.
  - The current file is backed up (O(backup)), the new content written atomically (temporary file,
    C(fsync), rename, directory C(fsync)) with the file's mode and owner, then re-read and re-validated.
    Any failure after the backup puts the original content back automatically and reports
    RV(restored); when that fails too, the message names the backup to restore by hand.
  - YAML edited only by O(values) of scalars keeps its comments, key order and formatting where each key
    path leads to a one-line scalar (the value's characters are replaced in place, RV(method=line_edit));
    otherwise the document is re-dumped (RV(method=dump)) and comments are lost.  C(docs/config_update.md)
    of the collection says exactly what is and is not preserved.
  - Symbolic links are followed; the file they point to is changed.
author:
  - lastgood.rollback developers (@lastgood)
requirements:
  - PyYAML on the target for YAML files.
  - jsonschema on the target for O(schema) and O(schema_path).
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
  - lastgood.rollback.attributes.store
  - lastgood.rollback.names
attributes:
  check_mode:
    support: full
    details: Check mode validates the change (the O(validate) command runs on a copy in a private temporary directory) and writes nothing.
  diff_mode:
    support: full
    details: The diff shows the file's text before and after.
  idempotent:
    support: full
    details: When the file already holds the requested content or values nothing is written and no backup is made.
options:
  path:
    description: The JSON or YAML file to change.
    type: path
    required: true
  format:
    description: V(json) or V(yaml); V(auto) decides by the extension (C(.json), C(.yaml), C(.yml)).
    type: str
    choices: [auto, json, yaml]
    default: auto
  content:
    description:
      - The whole new document.  A string is written exactly as given once it parses; a mapping or
        list is serialised (JSON with the file's indentation, YAML block style).
      - Mutually exclusive with O(values) and O(unset).
    type: raw
  values:
    description:
      - Values to set, by key path - keys separated by dots, list indexes in brackets or as dotted
        numbers, keys that contain dots in quotes and brackets, for example C(partyMode.enabled),
        C(teams[0].name), C(servers.1.port), C(labels["app.kubernetes.io/name"]).
      - Missing mappings on the way are created; an index one past the end appends.
      - Called C(values) rather than C(set) because O(set) names the backup set throughout the collection.
    type: dict
  unset:
    description: Key paths to remove; a missing key is not an error.
    type: list
    elements: str
  required_keys:
    description: Key paths that must exist in the new document.
    type: list
    elements: str
    default: []
  schema:
    description: A JSON Schema the new document must satisfy (any draft jsonschema knows; C($schema) picks it).
    type: dict
  schema_path:
    description: A JSON or YAML file on the target holding the JSON Schema.
    type: path
  validate:
    description:
      - A command that must succeed on the new content before it is written.  C(%s) is replaced by the
        path of a temporary copy with the same file name, in a private temporary directory.
      - Run without a shell; quote arguments as on a command line.
    type: str
  backup:
    description:
      - Where the current file is backed up before it is changed.
      - V(sibling) writes C(<path>.bak.YYYYMMDDHHMMSS) (UTC) beside it, with its mode, owner and mtime.
      - V(store) makes an incremental backup of the file in the backup store (O(backup_root), O(set)).
    type: str
    choices: [sibling, store]
    default: sibling
  keep_backups:
    description:
      - With O(backup=sibling), keep only the newest O(keep_backups) C(<path>.bak.*) files of O(path) - the one this
        run made included - and remove the older ones (RV(pruned_backups)).  They are removed only after a
        successful update (or when none was needed), under the same lock as the update, and the directory is
        flushed.
      - Not set, every sibling backup is kept.  Not allowed with O(backup=store) - store backups follow the store's
        retention (M(lastgood.rollback.backup) O(lastgood.rollback.backup#module:keep_last)).
    type: int
  create:
    description:
      - Create the file when it does not exist (mode C(0600)); otherwise a missing file is an error.
      - O(values) then start from an empty mapping.
    type: bool
    default: false
notes:
  - Sibling backups are kept unless O(keep_backups) is set.
seealso:
  - module: lastgood.rollback.backup
  - module: lastgood.rollback.run_state
'''

EXAMPLES = r'''
- name: Turn the party mode feature off, keeping the file's comments
  lastgood.rollback.config_update:
    path: /srv/app/config.yaml
    values:
      partyMode.enabled: false
    required_keys: [partyMode.enabled, partyMode.maxAgents, partyMode.maxRounds]

- name: Update the registry, validated against its schema, backed up into the store
  lastgood.rollback.config_update:
    path: /srv/app/custom_modes.json
    values:
      customModes[0].groups: [read, edit]
    schema_path: /srv/app/custom_modes.schema.json
    backup: store
    set: registry

- name: Replace the whole file, checked by the application's own validator
  lastgood.rollback.config_update:
    path: /srv/app/config.yaml
    content: "{{ lookup('ansible.builtin.file', 'files/config.yaml') }}"
    validate: /srv/app/bin/app --check-config %s
'''

RETURN = r'''
path:
  description: The file changed (symbolic links resolved).
  returned: always
  type: str
format:
  description: C(json) or C(yaml).
  returned: always
  type: str
method:
  description:
    - How the new text was made - C(line_edit) (values written over the old ones in place),
      C(dump) (document re-serialised), C(content) (as given), or C(none) (no change).
  returned: always
  type: str
  sample: line_edit
backup:
  description: The backup made before the change (sibling file or store backup directory), or null.
  returned: always
  type: str
  sample: /srv/app/config.yaml.bak.20261121231500
backup_id:
  description: ID of the store backup, or null.
  returned: always
  type: str
restored:
  description:
    - Null when nothing failed after the backup.  On failure, true when the original content was put back
      automatically, false when that failed too (restore by hand from the backup named in the message).
  returned: always
  type: bool
store_recovered:
  description:
    - With O(backup=store), what the store settled or cleaned up before the backup was taken, left by interrupted
      earlier runs (a restore journal rolled forward or back, staging directories, temporary files).
  returned: when O(backup=store) and a backup was taken
  type: list
  elements: str
pruned_backups:
  description: Sibling backups of the file that O(keep_backups) removed (in check mode, would remove), oldest first.
  returned: always
  type: list
  elements: str
  sample: [/srv/app/config.yaml.bak.20261101120000]
stale_temps_removed:
  description:
    - Temporary files that an earlier, interrupted update of this file (or of its sibling backup) left behind
      and this run removed.  Writers are serialised with a lock on the directory, so these never belong to an
      update in progress.
  returned: when not in check mode
  type: list
  elements: str
  sample: [.lastgood-tmp-config.yaml.3f9a0c1e]
'''

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.lastgood.rollback.plugins.module_utils import _config
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule


def run(module):
    params = module.params
    result = _config.update(
        params['path'], fmt=params['format'], content=params['content'], set_values=params['values'],
        unset=params['unset'], schema=params['schema'], schema_path=params['schema_path'],
        required_keys=params['required_keys'], validate_cmd=params['validate'], backup=params['backup'],
        backup_root=params['backup_root'], set_name=params['set'], create=params['create'],
        check=module.check_mode, keep_backups=params['keep_backups'])
    before, after = result.pop('before'), result.pop('after')
    if module._diff and result['changed']:
        result['diff'] = {'before': before or '', 'after': after, 'before_header': result['path'],
                          'after_header': result['path']}
    return result


def main():
    module = ResultModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            format=dict(type='str', default='auto', choices=['auto', 'json', 'yaml']),
            content=dict(type='raw'),
            values=dict(type='dict'),
            unset=dict(type='list', elements='str'),
            required_keys=dict(type='list', elements='str', default=[], no_log=False),
            schema=dict(type='dict'),
            schema_path=dict(type='path'),
            validate=dict(type='str'),
            backup=dict(type='str', default='sibling', choices=list(_config.BACKUP_MODES)),
            backup_root=dict(type='path', default='/var/backups/lastgood'),
            set=dict(type='str', default='default'),
            create=dict(type='bool', default=False),
            keep_backups=dict(type='int'),
        ),
        mutually_exclusive=[('content', 'values'), ('content', 'unset'), ('schema', 'schema_path')],
        required_one_of=[('content', 'values', 'unset')],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except _config.MissingLibrary as exc:
        module.fail_json(msg=missing_required_lib(exc.library, reason=str(exc)), exception=exc.trace,
                         restored=None, backup=None)
    except _config.ConfigError as exc:
        module.fail_json(msg=str(exc), restored=exc.restored, backup=exc.backup)


if __name__ == '__main__':
    main()
