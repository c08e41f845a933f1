#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: code_rollback
short_description: Roll the code of a host back to a known-good release or git ref in one task (Level 3)
version_added: 0.2.0
description:
  - Finds the code running now, prepares the known-good code with O(strategy), makes it live, makes the application
    load it (O(apply_command)), checks that no feature file is live and that the live code passes O(check_command),
    and records C(code_rolled_back) in the audit log.  The action of the C(lastgood.rollback.level3_code) role and of
    the playbook C(lastgood.rollback.rollback_level3).
  - C(release) strategy - goes back to O(release), or to the last release marked known-good (a
    O(known_good_marker) file in its directory) and not marked bad (O(bad_marker)), by deployment order (numbered
    releases by number, after the others by name), never by modification time.  When that release already runs
    nothing changes - mark a broken release bad to go back further.  Removes the feature files (O(remove_paths))
    from it, runs O(test_command) in it, then swaps the O(current_link) to it - a new link made beside it and renamed
    over it, so the link always points at a whole release.
  - C(git) strategy - refuses a work tree with uncommitted changes; creates the rollback branch (O(branch), by default
    C(rollback-<run id>)) at O(target_ref) (O(git_mode=reset)), or at the current commit and reverts
    O(revert_commits) on it (O(git_mode=revert)); a revert that does not apply cleanly is abandoned, the work tree
    put back on its branch and the half-made branch deleted.  Removes the feature files in a commit, runs
    O(test_command) in the work tree and deploys the branch with O(deploy_command) unless it already runs.  A rerun
    of the same run takes up the branch an earlier attempt made.
  - A failure names what failed and what state the code is in (unchanged, or switched and not loaded).
author:
  - lastgood.rollback developers (@lastgood)
extends_documentation_fragment:
  - lastgood.rollback.attributes
  - lastgood.rollback.attributes.action_group
attributes:
  check_mode:
    support: full
    details: Chooses the release or resolves the ref and reports what would change; changes nothing and runs no
      command (tests, deploy, apply, check).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds the known-good code running and its feature files gone, and reports no change.
options:
  strategy:
    description: V(release) switches to a known-good release directory; V(git) rolls the work tree back on a rollback
      branch and deploys it.
    type: str
    choices: [release, git]
    default: release
  releases_dir:
    description: Directory of the deployed releases, one directory each (V(release)).
    type: path
    default: /srv/app/releases
  current_link:
    description: The symbolic link to the running release.  When it does not exist, the running code is the work tree
      O(repo).
    type: path
    default: /srv/app/current
  known_good_marker:
    description: A release is known-good when its directory holds a file of this name.
    type: str
    default: KNOWN_GOOD
  bad_marker:
    description: A release whose directory holds a file of this name is never switched to.
    type: str
    default: BAD_RELEASE
  release:
    description: The release to switch to by name; empty picks the last one marked known-good.
    type: str
    default: ''
  repo:
    description: The git work tree (V(git)).
    type: path
    default: /srv/app/code
  git_mode:
    description: V(reset) starts the rollback branch at O(target_ref); V(revert) starts it at HEAD and reverts
      O(revert_commits) on it, in order.
    type: str
    choices: [reset, revert]
    default: reset
  target_ref:
    description: The known-good commit, branch or tag (O(git_mode=reset)).
    type: str
    default: pre-party-mode-v1.0.0
  revert_commits:
    description: The commits to revert, in order (O(git_mode=revert)).
    type: list
    elements: str
    default: []
  branch:
    description: The rollback branch; empty names it C(rollback-<run id>).
    type: str
    default: ''
  git_author_name:
    description: Author and committer of the rollback's commits.
    type: str
    default: lastgood.rollback
  git_author_email:
    description: Author and committer e-mail of the rollback's commits.
    type: str
    default: rollback@lastgood.invalid
  deploy_command:
    description: Makes the rollback branch the running code; the branch name is added as the last argument.  Empty
      when the application runs from the work tree itself.
    type: list
    elements: str
    default: []
  revision_file:
    description: A file of the running code whose first word is the commit it was deployed from; a branch already
      running is not deployed again.  Empty deploys every time.
    type: str
    default: REVISION
  remove_paths:
    description: Feature files to remove, relative to the code; each part may be a shell pattern (C(*) and C(?)
      never cross a C(/)).
    type: list
    elements: str
    default: []
  test_command:
    description: Run in the code about to go live (the release directory or the work tree); empty skips.
    type: list
    elements: str
    default: []
  apply_command:
    description: Makes the application load the code it now points at, when the code was switched; empty skips.
    type: list
    elements: str
    default: []
  check_command:
    description: Checks the live code after the switch; empty skips.
    type: list
    elements: str
    default: []
  check_retries:
    description: Retries of O(check_command) (it is tried this many times plus one).
    type: int
    default: 5
  check_delay:
    description: Seconds between the tries of O(check_command).
    type: int
    default: 2
  audit_log:
    description: The audit log that records C(code_rolled_back) when the code changed; empty records nothing.
    type: path
    default: /var/log/lastgood/audit.jsonl
  run_id:
    description: The run the rollback belongs to (names the rollback branch and the swap link, recorded in the audit
      log).
    type: str
    default: ''
seealso:
  - module: lastgood.rollback.restore
  - module: lastgood.rollback.verify
'''

EXAMPLES = r'''
- name: Go back to the last release marked known-good
  lastgood.rollback.code_rollback:
    releases_dir: /srv/app/releases
    current_link: /srv/app/current
    remove_paths: [lib/party-mode, docs/PARTY_MODE*.md]
    test_command: [sh, tests/smoke.sh]
    apply_command: [/srv/app/bin/appctl, reload]
    check_command: [/srv/app/bin/appctl, selftest]
    run_id: "{{ lastgood_run_id }}"
  register: level3_code_result

- name: Revert two commits on a rollback branch and deploy it
  lastgood.rollback.code_rollback:
    strategy: git
    repo: /srv/app/code
    git_mode: revert
    revert_commits: [4f1c2e9, 9b0d7aa]
    deploy_command: [/srv/app/bin/appctl, deploy]
'''

RETURN = r'''
strategy:
  description: The strategy used.
  returned: always
  type: str
from:
  description: The code running before - C(dir), C(release) (null outside a release) and C(commit) (null without a
    revision file).
  returned: always
  type: dict
live:
  description: The code running after, as RV(from); in check mode, the code running now.
  returned: always
  type: dict
to_release:
  description: The release gone back to.
  returned: when O(strategy=release)
  type: str
known_good_releases:
  description: Every release marked known-good and not bad, in deployment order.
  returned: when O(strategy=release)
  type: list
  elements: str
chosen_by:
  description: C(name) (O(release)) or C(known-good marker).
  returned: when O(strategy=release)
  type: str
mode:
  description: The git mode.
  returned: when O(strategy=git)
  type: str
branch:
  description: The rollback branch.
  returned: when O(strategy=git)
  type: str
started_at:
  description: The ref the rollback branch started from and its commit.
  returned: when O(strategy=git)
  type: str
reverted:
  description: The commits reverted.
  returned: when O(strategy=git)
  type: list
  elements: str
to_commit:
  description: The commit at the tip of the rollback branch (in check mode, the commit checked out now).
  returned: when O(strategy=git)
  type: str
removed:
  description: The feature files removed, relative to the code (in check mode, those that would be).
  returned: always
  type: list
  elements: str
switched:
  description: Whether the running code was (or in check mode would be) switched.
  returned: always
  type: bool
'''

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _code
from ansible_collections.lastgood.rollback.plugins.module_utils._result import ResultModule, params_or_defaults


def main():
    argument_spec = dict(
        strategy=dict(type='str', choices=['release', 'git'], default='release'),
        releases_dir=dict(type='path', default='/srv/app/releases'),
        current_link=dict(type='path', default='/srv/app/current'),
        known_good_marker=dict(type='str', default='KNOWN_GOOD'),
        bad_marker=dict(type='str', default='BAD_RELEASE'),
        release=dict(type='str', default=''),
        repo=dict(type='path', default='/srv/app/code'),
        git_mode=dict(type='str', choices=['reset', 'revert'], default='reset'),
        target_ref=dict(type='str', default='pre-party-mode-v1.0.0'),
        revert_commits=dict(type='list', elements='str', default=[]),
        branch=dict(type='str', default=''),
        git_author_name=dict(type='str', default='lastgood.rollback'),
        git_author_email=dict(type='str', default='rollback@lastgood.invalid'),
        deploy_command=dict(type='list', elements='str', default=[]),
        revision_file=dict(type='str', default='REVISION'),
        remove_paths=dict(type='list', elements='str', default=[]),
        test_command=dict(type='list', elements='str', default=[]),
        apply_command=dict(type='list', elements='str', default=[]),
        check_command=dict(type='list', elements='str', default=[]),
        check_retries=dict(type='int', default=5),
        check_delay=dict(type='int', default=2),
        audit_log=dict(type='path', default='/var/log/lastgood/audit.jsonl'),
        run_id=dict(type='str', default=''),
    )
    module = ResultModule(argument_spec=argument_spec, supports_check_mode=True)
    params = params_or_defaults(module.params, argument_spec)
    params['audit_log'] = params['audit_log'] or ''
    try:
        result = _code.rollback(params, check_mode=module.check_mode)
    except (_code.CodeError, _audit.AuditError, OSError) as exc:
        module.fail_json(msg=str(exc))
    target = result.get('to_release') or result.get('branch')
    if result['changed']:
        msg = 'the code %s rolled back to %s' % ('would be' if module.check_mode else 'was', target)
    else:
        msg = 'the code already runs %s' % target
    module.exit_json(msg=msg, **result)


if __name__ == '__main__':
    main()
