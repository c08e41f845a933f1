# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Roll the code of one host back (Level 3) in one module run: the release or the git strategy.

``rollback(params, check_mode)`` finds the code running now, prepares the known-good code with the
strategy, makes it live, makes the application load it, checks no feature file is live and the live
code passes its check, and records ``code_rolled_back`` in the audit log.  It returns the result
(``strategy``, ``from``, ``to_release`` or ``to_commit``, ``removed``, ``changed``, ``live``) or raises
:class:`CodeError`, whose message says what failed and what state the code is in.

- **release**: the release to go back to is the one named, or the last one marked known-good (a
  marker file in its directory) and not marked bad, in deployment order (numbered releases by
  number, after the others by name; never by modification time).  Its feature files are removed,
  its tests run in it, then the ``current`` link is swapped: a new link made beside it and renamed
  over it, so ``current`` always points at a whole release.
- **git**: a rollback branch (``rollback-<run id>``) at the known-good ref (``reset``), or at HEAD with
  named commits reverted on it (``revert``; a revert that does not apply is abandoned, the work tree
  put back on its branch and the half-made branch deleted); the feature files are removed in a
  commit, the tests run in the work tree, and the branch is deployed unless it already runs.

Check mode changes nothing: it reports what would change and runs no tests on code that was not
prepared.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import re
import shutil

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _checks
from ansible_collections.lastgood.rollback.plugins.module_utils._fsatomic import fsync_dir


class CodeError(Exception):
    """The code rollback stopped; the message says what failed and what state the code is in."""


# -- what runs now ----------------------------------------------------------------------------

def live_code(current_link, repo, revision_file):
    """``{dir, release, commit}`` of the running code: ``current`` resolved (its directory name is the
    release), else the work tree ``repo``; the commit is the first word of ``revision_file`` in it."""
    linked = os.path.islink(current_link)
    directory = os.path.realpath(current_link) if linked else repo
    commit = None
    if revision_file:
        try:
            with open(os.path.join(directory, revision_file), 'rb') as handle:
                words = handle.read(4096).decode('utf-8', 'replace').split()
            commit = words[0] if words else None
        except OSError:
            commit = None
    return {'dir': directory, 'release': os.path.basename(directory) if linked else None, 'commit': commit}


# -- feature files ----------------------------------------------------------------------------

def _pattern_regex(patterns):
    """Relative paths whose parts may be shell patterns, as one regular expression: * and ? never cross a /."""
    parts = [re.escape(pattern).replace(r'\*', '[^/]*').replace(r'\?', '[^/]') for pattern in patterns]
    return re.compile('(%s)' % '|'.join(parts))


def find_paths(root, patterns):
    """Paths below ``root`` (hidden ones included, symbolic links not followed) whose path relative to
    ``root`` matches one of ``patterns``; in walk order, each directory's files before its directories."""
    if not patterns or not os.path.isdir(root):
        return []
    names = [os.path.basename(pattern) for pattern in patterns]
    whole = _pattern_regex(patterns)
    found = []
    for top, dirs, files in os.walk(root):
        for name in files + dirs:
            path = os.path.join(top, name)
            if any(fnmatch.fnmatch(name, pattern) for pattern in names) and whole.fullmatch(os.path.relpath(path, root)):
                found.append(path)
    return found


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    fsync_dir(os.path.dirname(path))


def remove_paths(root, patterns, check_mode):
    """Remove the paths below ``root`` matching ``patterns``; their paths relative to ``root``."""
    found = find_paths(root, patterns)
    for path in found:
        if not check_mode:
            _remove(path)
    return [os.path.relpath(path, root) for path in found]


# -- commands ---------------------------------------------------------------------------------

def _command(argv, what, cwd=None, state=''):
    """Run ``argv``; raise CodeError naming ``what`` and ``state`` when it does not exit 0."""
    rc, out, err = _checks.run_argv(argv, cwd=cwd)
    if rc != 0:
        message = _checks.command_failure(what, argv, rc, out + ' ' + err)
        raise CodeError(message + (' ' + state if state else ''))


# -- release strategy -------------------------------------------------------------------------

def deployment_order(names):
    """Release names in deployment order: numbered releases by number, after the others by name."""
    others = sorted(name for name in names if not name.isdigit())
    numbered = sorted((name for name in names if name.isdigit()), key=int)
    return others + numbered


def choose_release(releases_dir, release, good_marker, bad_marker):
    """``(target, known_good)``: the release to go back to and every release marked known-good and not bad."""
    try:
        names = sorted(entry.name for entry in os.scandir(releases_dir)
                       if entry.is_dir(follow_symlinks=False) and not entry.name.startswith('.'))
    except OSError:
        names = []
    bad = [name for name in names if os.path.isfile(os.path.join(releases_dir, name, bad_marker))]
    good = [name for name in names
            if os.path.isfile(os.path.join(releases_dir, name, good_marker)) and name not in bad]
    ordered = deployment_order(good)
    target = release or (ordered[-1] if ordered else '')
    if not target or target not in names or target in bad:
        if target:
            why = 'Release %s does not exist in %s or is marked bad (%s).' % (target, releases_dir, bad_marker)
        else:
            why = 'No release in %s is marked known-good (a %s file in its directory) and not bad.' % (
                releases_dir, good_marker)
        raise CodeError('no release to roll back to. %s Nothing was changed.  Name a release with level3_code_release, '
                        'mark one known-good (tasks_from mark_known_good), or use level3_code_strategy=git.' % why)
    return target, ordered


def swap_link(current_link, target_dir, run_id):
    """Point ``current_link`` at ``target_dir`` in one step: a new relative link beside it, renamed over it."""
    parent = os.path.dirname(current_link)
    temp = os.path.join(parent, '.lastgood-tmp-%s-%s' % (os.path.basename(current_link), run_id or 'swap'))
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(os.path.relpath(target_dir, parent), temp)
    try:
        os.rename(temp, current_link)
    except OSError:
        os.unlink(temp)
        raise
    fsync_dir(parent)


def release_rollback(params, before, check_mode):
    """The release strategy; the result's detail and whether the running code was switched."""
    releases_dir = params['releases_dir']
    target, known_good = choose_release(releases_dir, params['release'], params['known_good_marker'],
                                        params['bad_marker'])
    target_dir = os.path.join(releases_dir, target)
    removed = remove_paths(target_dir, params['remove_paths'], check_mode)
    if params['test_command'] and not check_mode:
        _command(params['test_command'], 'The tests in release %s failed' % target, cwd=target_dir,
                 state='The running code is unchanged (%s).' % before['dir'])
    switched = os.path.realpath(before['dir']) != os.path.realpath(target_dir)
    if switched and not check_mode:
        swap_link(params['current_link'], target_dir, params['run_id'])
    detail = {'strategy': 'release', 'from': before, 'to_release': target, 'known_good_releases': known_good,
              'chosen_by': 'name' if params['release'] else 'known-good marker', 'removed': removed}
    return detail, switched, switched or bool(removed)


# -- git strategy -----------------------------------------------------------------------------

def _git_env(params):
    env = dict(os.environ)
    env.update(GIT_AUTHOR_NAME=params['git_author_name'], GIT_AUTHOR_EMAIL=params['git_author_email'],
               GIT_COMMITTER_NAME=params['git_author_name'], GIT_COMMITTER_EMAIL=params['git_author_email'])
    return env


def _git(params, *args):
    """``(rc, stdout, stderr)`` of ``git <args>`` in the work tree, with the rollback's identity."""
    return _checks.run_argv(['git'] + list(args), cwd=params['repo'], env=_git_env(params))


def _git_out(params, *args, **kwargs):
    """The output of ``git <args>``; CodeError naming the state (``state=``, by default nothing changed) if it fails."""
    rc, out, err = _git(params, *args)
    if rc != 0:
        why = (err or out).strip()
        state = kwargs.get('state', 'Nothing was changed.')
        raise CodeError('git %s failed in %s: %s.  %s' % (' '.join(args), params['repo'], why, state))
    return out.strip()


def _make_branch(params, branch, start, original):
    """Create ``branch`` at ``start`` and revert the named commits on it; on a failure put everything back."""
    steps = [('create the rollback branch at the commit it starts from', ['checkout', '--quiet', '-b', branch, start])]
    if params['git_mode'] == 'revert':
        steps += [('revert %s on the rollback branch' % commit, ['revert', '--no-edit', commit])
                  for commit in params['revert_commits']]
    for what, args in steps:
        rc, out, err = _git(params, *args)
        if rc == 0:
            continue
        _git(params, 'revert', '--abort')
        _git(params, 'checkout', '--quiet', original)
        _git(params, 'branch', '-D', branch)
        raise CodeError(
            '%s failed in %s: %s.  The work tree is back on %s and the rollback branch %s was deleted; the running '
            'code is unchanged.  Revert by hand on a branch of your own and name it in level3_code_branch, or use '
            'level3_code_git_mode=reset, then rerun with the same run id.'
            % (what, params['repo'], ' '.join((err or out).split()), original, branch))


def git_rollback(params, before, check_mode):
    """The git strategy; the result's detail, whether the running code was switched, whether anything changed."""
    repo = params['repo']
    dirty = _git_out(params, 'status', '--porcelain', '--untracked-files=no')
    branch = params['branch'] or 'rollback-' + (
        params['run_id'] or datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ'))
    start_ref = params['target_ref'] if params['git_mode'] == 'reset' else 'HEAD'
    rc, start, _err = _git(params, 'rev-parse', '--verify', '--quiet', start_ref + '^{commit}')
    if dirty:
        raise CodeError('cannot roll %s back: it has uncommitted changes (%s), which the rollback would mix with or '
                        'lose; commit or stash them.  Nothing was changed.' % (repo, '; '.join(dirty.splitlines())))
    if rc != 0:
        raise CodeError('cannot roll %s back: %s is not a commit, branch or tag there; check level3_code_target_ref.  '
                        'Nothing was changed.' % (repo, start_ref))
    start = start.strip()
    original = _git_out(params, 'rev-parse', '--abbrev-ref', 'HEAD')
    existing_rc, _out, _err = _git(params, 'rev-parse', '--verify', '--quiet', 'refs/heads/' + branch)
    if existing_rc not in (0, 1):
        raise CodeError('cannot look for the branch %s in %s.  Nothing was changed.' % (branch, repo))
    created = existing_rc != 0
    staged = []
    state = 'The work tree is on the rollback branch %s; the running code is unchanged.' % branch
    if not check_mode:
        if created:
            _make_branch(params, branch, start, original)
        elif original != branch:
            _git_out(params, 'checkout', '--quiet', branch)
        if params['remove_paths']:
            _git_out(params, 'rm', '-r', '--quiet', '--ignore-unmatch', '--', *params['remove_paths'], state=state)
        staged = _git_out(params, 'diff', '--cached', '--name-only', state=state).splitlines()
        if staged:
            _git_out(params, 'commit', '--quiet', '-m',
                     'rollback: remove feature files (%s)' % ', '.join(params['remove_paths']), state=state)
    tip = _git_out(params, 'rev-parse', 'HEAD', state=state)
    if params['test_command'] and not check_mode:
        _command(params['test_command'], 'The tests on the rollback branch failed', cwd=repo, state=state)
    deploy = bool(params['deploy_command']) and before['commit'] != tip
    if deploy and not check_mode:
        _command(params['deploy_command'] + [branch], 'Deploying the rollback branch failed', state=state)
    detail = {'strategy': 'git', 'mode': params['git_mode'], 'from': before, 'branch': branch,
              'started_at': '%s (%s)' % (start_ref, start),
              'reverted': list(params['revert_commits']) if params['git_mode'] == 'revert' else [],
              'to_commit': tip, 'removed': staged}
    switched = deploy or (not params['deploy_command'] and created)
    return detail, switched, created or deploy or bool(staged)


# -- the whole rollback -----------------------------------------------------------------------

def rollback(params, check_mode=False):
    """Roll the code back with ``params['strategy']``; the module's result (without ``msg``)."""
    before = live_code(params['current_link'], params['repo'], params['revision_file'])
    strategy = release_rollback if params['strategy'] == 'release' else git_rollback
    detail, switched, changed = strategy(params, before, check_mode)
    result = dict(detail, switched=switched, changed=changed)
    if check_mode:
        return dict(result, live=before)
    if params['apply_command'] and switched:
        _command(params['apply_command'], 'The application did not load the rolled-back code',
                 state='The code was switched to %s.' % (detail.get('to_release') or detail.get('to_commit')))
    live = live_code(params['current_link'], params['repo'], params['revision_file'])
    result['live'] = live
    target = detail.get('to_release') or detail['branch']
    still = [os.path.relpath(path, live['dir']) for path in find_paths(live['dir'], params['remove_paths'])]
    if still:
        raise CodeError('the live code %s still holds feature files %s after the rollback to %s.  Nothing else is '
                        'wrong with the switch; remove them or add them to level3_code_remove_paths and rerun with '
                        'the same run id.' % (live['dir'], ', '.join(still), target))
    if params['check_command']:
        checked = _checks.command_check('code_check', params['check_command'], params['check_retries'],
                                        params['check_delay'])
        if not checked['ok']:
            raise CodeError('the live code %s (%s) failed its check: %s.' % (live['dir'], target, checked['message']))
    if changed and params['audit_log']:
        _audit.append(params['audit_log'], 'code_rolled_back', run_id=params['run_id'] or None, level='warning',
                      detail=detail)
    return result
