# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Glue between the backup store and the modules that use it.

The options every store module shares (documented once in the
``lastgood.rollback.attributes.store`` fragment) and the one place where engine
errors become ``fail_json``; results go out through ``ResultModule`` (names that
are not UTF-8, escaped).
"""

from __future__ import annotations

from ._manifest import ManifestError
from ._result import ResultModule
from ._store import DEFAULT_BACKUP_ROOT, DEFAULT_SET, Store, StoreError


def store_argument_spec(**options):
    """``backup_root`` and ``set`` plus the module's own ``options``."""
    spec = {
        'backup_root': {'type': 'path', 'default': DEFAULT_BACKUP_ROOT},
        'set': {'type': 'str', 'default': DEFAULT_SET},
    }
    spec.update(options)
    return spec


def run_store_module(argument_spec, action, **module_kwargs):
    """Build the module, open its store, run ``action(module, store)`` and exit with its result dict."""
    module = ResultModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    try:
        store = Store(module.params['backup_root'], module.params['set'])
        result = action(module, store)
    except (StoreError, ManifestError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='unexpected I/O error in the backup store %s (set %s): %s'
                         % (module.params['backup_root'], module.params['set'], exc))
    module.exit_json(**result)
