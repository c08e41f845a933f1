# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether recorded approvals satisfy the authority a Level 4 decision requires.

An approval is a mapping with ``who``, ``role`` and ``when`` (UTC, ``YYYY-MM-DDTHH:MM:SSZ``),
optionally ``reference``.  It counts when all three are there, ``when`` is not in the future
(five minutes of clock skew allowed) and not older than the maximum age.  Level 4 is approved
when the decision (``_decide.decide``) is Level 4 and every required role - the decision's
authority plus any extra roles - is approved by a different person.  Users set the approvals as
``lastgood_approvals`` and the conditions as ``lastgood_conditions``; the refusal names those.
Nothing is written anywhere.
"""

from __future__ import annotations

import calendar
import re
import time

WHEN_RE = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$')
FUTURE_SKEW_SECONDS = 300
REFUSED = 'Level 4 full restore refused; nothing was changed on any host.'
# The keys of an approval check (what approvals.json holds).
KEYS = ('rule', 'reason', 'level', 'required', 'valid', 'invalid', 'missing', 'approvers', 'approved')


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _text(value):
    return '' if value is None else str(value)


# A time given as a YAML timestamp (an AWX launch loads `when: 2026-11-22T01:00:00Z` as a datetime) reaches the
# module in its ISO form, UTC written +00:00.
_ISO_UTC = re.compile(r'^([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})\+00:00$')


def _when_text(value):
    """``when`` as text, a UTC timestamp in its ISO form written YYYY-MM-DDTHH:MM:SSZ."""
    return _ISO_UTC.sub(r'\1T\2Z', _text(value).strip())


def problems_of(approval, now, max_age_hours):
    """Why ``approval`` does not count (an empty list when it does); ``now`` in epoch seconds."""
    problems = ['no %s' % field for field in ('who', 'role', 'when') if not _text(approval.get(field)).strip()]
    when = _when_text(approval.get('when'))
    if not when:
        return problems
    try:
        if not WHEN_RE.match(when):
            raise ValueError(when)
        age = now - calendar.timegm(time.strptime(when, '%Y-%m-%dT%H:%M:%SZ'))
    except ValueError:
        return problems + ['when is not YYYY-MM-DDTHH:MM:SSZ (UTC)']
    if age < -FUTURE_SKEW_SECONDS:
        problems.append('when is in the future')
    if max_age_hours > 0 and age > max_age_hours * 3600:
        problems.append('older than %d hours' % max_age_hours)
    return problems


def check(decision, approvals, extra_authority=(), max_age_hours=24, now=None):
    """The approval check of ``decision`` (a ``_decide.decide`` result): a dict with the keys of ``KEYS``.

    ``valid`` and ``invalid`` are the approvals with their ``problems``; ``missing`` the required
    roles no valid approval covers; ``approvers`` the different people whose approvals count.
    """
    now = time.time() if now is None else now
    required = _unique(list(decision['authority']) + list(extra_authority or ()))
    checked = [dict(approval, problems=problems_of(approval, now, max_age_hours)) for approval in approvals or ()]
    valid = [approval for approval in checked if not approval['problems']]
    invalid = [approval for approval in checked if approval['problems']]
    valid_roles = [approval['role'] for approval in valid]
    missing = [role for role in required if role not in valid_roles]
    approvers = _unique(approval['who'] for approval in chosen({'valid': valid, 'required': required}))
    return {
        'rule': decision['rule'], 'reason': decision['reason'], 'level': decision['level'],
        'required': required, 'valid': valid, 'invalid': invalid, 'missing': missing, 'approvers': approvers,
        'approved': decision['level'] == 4 and not missing and len(approvers) >= len(required),
    }


def chosen(approval):
    """The valid approvals for a required role: those recorded in the audit log and the incident report."""
    return [entry for entry in approval['valid'] if entry['role'] in approval['required']]


def refusal(approval, conditions):
    """The refusal message for a check that did not approve: what is missing, in words."""
    if approval['level'] != 4:
        return ('%s The conditions given (%s) call for Level %s, not Level 4 (%s); use that level, or name the '
                'condition that calls for Level 4 in lastgood_conditions (the role on its own reads '
                'level4_full_restore_conditions).'
                % (REFUSED, ', '.join(conditions) or 'none', approval['level'], approval['reason']))
    parts = [REFUSED, 'Rule %s requires the approval of %s, each by a different person, recorded in '
             'lastgood_approvals (the variable of the rollback_level4 playbook; the role on its own reads '
             'level4_full_restore_approvals) as {who, role, when}.'
             % (approval['rule'], ' and '.join(approval['required']))]
    if approval['missing']:
        parts.append('Missing: %s.' % ', '.join(approval['missing']))
    if approval['invalid']:
        parts.append('Not counted: %s.' % '; '.join(
            '%s as %s (%s)' % (_text(entry.get('who')) or '?', _text(entry.get('role')) or '?',
                               ', '.join(entry['problems']))
            for entry in approval['invalid']))
    if not approval['missing']:
        parts.append('The same person may not approve for two roles.')
    return ' '.join(parts)


def approved_message(approval):
    return 'Level 4 approved under rule %s by %s.' % (approval['rule'], ', '.join(approval['approvers']))
