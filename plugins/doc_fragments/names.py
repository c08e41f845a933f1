# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the modules that return file names write names that are not UTF-8."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options: {}
notes:
  - File names are bytes; a name that is not valid UTF-8 is returned escaped, and so is every result string that
    holds it (paths, plans, mismatches, messages, warnings) - each byte that is not UTF-8 as C(\xNN) (two
    lowercase hex digits) and each backslash as C(\x5c).  For example C(/srv/app/) followed by the bytes
    C(0xff 0xfe) is returned as C(/srv/app/\xff\xfe).  A valid name that would read as that form (it holds a
    backslash and every backslash starts C(\x5c) or C(\x80) to C(\xff)) is returned in the form too, so that
    the form always names exactly one file.
  - The C(paths) option of M(lastgood.rollback.backup) and M(lastgood.rollback.restore) takes the form back, so a
    path copied from a result names the same file.  See C(docs/store.md) of the collection.
'''
