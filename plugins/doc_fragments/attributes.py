# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Standard attributes shared by the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode) when in diff mode.
  idempotent:
    description: When run twice in a row outside check mode with the same arguments, the second invocation reports no change.
'''

    ACTION_GROUP = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/lastgood.rollback.all) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - lastgood.rollback.all
'''

    # For modules that only read: nothing to predict in check mode, no diff, never a change.
    READ_ONLY = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads, in check mode as outside it.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The module never changes anything.
'''

    STORE = r'''
options:
  backup_root:
    description:
      - Directory that holds the backup store.  Each O(set) is a sub-directory of it.
      - Created with mode C(0700) when missing; backups can hold secrets.
      - It, every directory above it and the set and backup directories in it must belong to the user the module runs
        as or to root and must not be writable by group or others (a root-owned sticky directory such as C(/tmp) may be
        above it); otherwise the module refuses to use the store and names the path and its owner.
        See the collection's C(docs/security.md).
    type: path
    default: /var/backups/lastgood
  set:
    description:
      - Name of the backup set, the unit of retention and of the C(LASTGOOD) mark.
      - Letters, digits, C(.), C(_) and C(-) only.
    type: str
    default: default
'''
