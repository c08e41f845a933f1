# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate the documents a restore would write, from the backup, before anything changes.

A restore of configuration puts back whatever the backup holds; when that is a document that
fails its checks (it does not parse, lacks a required key, breaks its schema, its validate
command refuses it), the restore must not happen.  Each listed document the restore writes is
read from the backup - checked against the manifest's SHA-256, so what is validated is what would
be written - and validated as config_update validates new content (``_config.check_bytes``).  A
listed document the backup holds no file for fails too: restoring would remove it.
"""

from __future__ import annotations

import hashlib
import os

from . import _config
from ._fsatomic import read_bytes
from ._restore import select_targets


class DocumentError(Exception):
    """A document the restore would write is missing from the backup or invalid; nothing was changed."""


def _rel(path):
    return '/'.join(part for part in path.split('/') if part and part != '.')


def _content(store, manifest, backup_id, path):
    """The bytes the restore would write at ``path``; DocumentError when the backup holds no such file."""
    entry = manifest.by_path.get(_rel(path))
    if entry is None or entry.type not in ('file', 'hardlink'):
        why = ('it was absent when the backup was taken, so restoring it would remove the file' if entry is None
               else 'it is a %s there, not a document' % entry.type)
        raise DocumentError('Backup %s has no readable %s (%s). Nothing was changed. Name a backup that has it.'
                            % (backup_id, path, why))
    try:
        data = read_bytes(os.path.join(store.data_dir(backup_id), _rel(path)), limit=_config.MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise DocumentError('Backup %s has no readable %s (%s). Nothing was changed. Check the backup with '
                            'lastgood.rollback.backup_verify, or name another one.' % (backup_id, path, exc))
    if entry.type == 'file' and entry.sha256 and hashlib.sha256(data).hexdigest() != entry.sha256:
        raise DocumentError('Backup %s is damaged: %s does not match its manifest (SHA-256). Nothing was changed. '
                            'Do not restore from it; name another backup.' % (backup_id, path))
    return data


def check_restore_documents(store, ref, paths, documents):
    """Validate each of ``documents`` that restoring backup ``ref`` (``paths``, None for all) writes.

    Returns ``(validated paths, paths the restore does not write)``; raises DocumentError (or the
    store's and the restore's own errors for an unusable backup or paths) before anything changes.
    """
    store.check_trust()
    backup_id = store.resolve(ref)['id']
    manifest = store.load_manifest(backup_id)
    written = [rel for _target, rel in select_targets(manifest, paths)]
    validated, outside = [], []
    for document in documents:
        path = document['path']
        rel = _rel(path)
        if not any(rel == top or rel.startswith(top + '/') for top in written):
            outside.append(path)
            continue
        data = _content(store, manifest, backup_id, path)
        try:
            _config.check_bytes(data, path, document.get('format') or 'auto', document.get('required_keys') or [],
                                document.get('schema'), document.get('schema_path'), document.get('validate'),
                                what='%s in backup %s' % (path, backup_id))
        except _config.ConfigError as exc:
            raise DocumentError('%s. Nothing was changed: the restore would write a document that fails its '
                                'validation. Name a backup whose %s is valid.' % (exc, path))
        validated.append(path)
    return validated, outside
