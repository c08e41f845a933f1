# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The documents option: JSON/YAML files validated the way config_update validates new content."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  documents:
    description:
      - JSON or YAML documents to validate - each must parse, hold its O(documents[].required_keys), satisfy its
        O(documents[].schema) or O(documents[].schema_path) and pass its O(documents[].validate) command, exactly as
        M(lastgood.rollback.config_update) validates new content.
      - Their content is read on the host and never returned.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The document.
        type: path
        required: true
      format:
        description: V(json) or V(yaml); V(auto) decides by the extension (C(.json), C(.yaml), C(.yml)).
        type: str
        choices: [auto, json, yaml]
        default: auto
      required_keys:
        description: Key paths that must exist (see M(lastgood.rollback.config_update)).
        type: list
        elements: str
        default: []
      schema:
        description: A JSON Schema the document must satisfy (jsonschema on the host).
        type: dict
      schema_path:
        description: A JSON or YAML file on the host holding the JSON Schema.
        type: path
      validate:
        description:
          - A command that must succeed on a copy of the document.  C(%s) is replaced by the path of the copy, which
            has the document's file name and lies in a private temporary directory.  Run without a shell.
        type: str
'''
