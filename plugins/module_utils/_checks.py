# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Named checks, as the preflight and verify modules report them.

A check is ``{name, ok, message}`` plus what it was about (``path``, ``backup``); a phase runs
every check, then sums them up once (:func:`summary`) and fails once, one line per failed check
(:func:`failure_message`).  Commands and URLs are tried with retries, as an Ansible ``until``
loop does (``retries`` + 1 tries, ``delay`` seconds apart).
"""

from __future__ import annotations

import re
import subprocess
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

OUTPUT_SHOWN = 400
COMMAND_TIMEOUT = 600
URL_TIMEOUT = 30


def check(name, ok, message, **about):
    """One check's record: what it was about (``path=...``), whether it passed, and the sentence saying so."""
    record = {'name': name}
    record.update(about)
    record.update(ok=bool(ok), message=message)
    return record


def summary(checks):
    """``{ok, checks, failed_checks}`` of a list of checks."""
    failed = [item['name'] for item in checks if not item['ok']]
    return {'ok': not failed, 'checks': checks, 'failed_checks': failed}


def failure_message(title, checks):
    """``title`` and a ``- message`` line per failed check."""
    return '\n'.join([title] + ['- %s' % item['message'] for item in checks if not item['ok']])


def _shorten(text):
    text = re.sub(r'\s+', ' ', text).strip()
    if len(text) <= OUTPUT_SHOWN:
        return text
    return text[:OUTPUT_SHOWN - 3].rsplit(' ', 1)[0] + '...'


def _tries(retries, delay, attempt):
    """``attempt()`` -> (passed, answer) up to ``retries`` + 1 times, ``delay`` seconds apart; the last answer."""
    tries = 0
    while True:
        tries += 1
        passed, answer = attempt()
        if passed or tries > int(retries):
            return passed, answer
        time.sleep(max(delay, 0))


def run_argv(argv, cwd=None, env=None):
    """``(rc, stdout, stderr)`` of ``argv``, run without a shell in ``cwd``; rc None when it could not run
    (stderr then says why)."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None, '', 'did not finish within %d s' % COMMAND_TIMEOUT
    except OSError as exc:
        return None, '', 'could not run: %s' % exc
    return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')


def run_command(argv):
    """``(rc, output)`` of ``argv`` (standard output and error), run without a shell; rc None when it could not run."""
    rc, out, err = run_argv(argv)
    return rc, (out + ' ' + err) if rc is not None else err


def command_failure(what, argv, rc, output):
    """``what: argv exited rc: output`` (the output shortened), the sentence a failed command is reported with."""
    shown = _shorten(output)
    how = ('exited %s' % rc) if rc is not None else 'did not run'
    return '%s: %s %s%s.' % (what, ' '.join(argv), how, ': ' + shown if shown else '')


def command_check(name, argv, retries=0, delay=0):
    """Whether ``argv`` exits 0 (within the tries); the message shows its output when it did not."""
    shown = ' '.join(argv)
    passed, (rc, output) = _tries(retries, delay, lambda: _command_try(argv))
    if passed:
        return check(name, True, '%s passes' % shown)
    if rc is None:
        return check(name, False, '%s %s' % (shown, output))
    output = _shorten(output)
    return check(name, False, '%s exited %s%s' % (shown, rc, ': ' + output if output else ''))


def _command_try(argv):
    rc, output = run_command(argv)
    return rc == 0, (rc, output)


def fetch_status(url):
    """``(status, reason)`` of a GET of ``url``; status None when nothing answered."""
    try:
        response = open_url(url, method='GET', timeout=URL_TIMEOUT, follow_redirects='safe')
        try:
            return response.status, response.reason
        finally:
            response.close()
    except HTTPError as exc:
        return exc.code, str(exc.reason)
    except (URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, 'reason', exc))


def fetch_text(url, limit=1024 * 1024):
    """``(body, error)`` of a GET of ``url`` answering 200: the text (at most ``limit`` bytes), or None and why not."""
    try:
        response = open_url(url, method='GET', timeout=URL_TIMEOUT, follow_redirects='safe')
        try:
            if response.status != 200:
                return None, '%s answered %s' % (url, response.status)
            return response.read(limit).decode('utf-8', 'replace'), None
        finally:
            response.close()
    except HTTPError as exc:
        return None, '%s answered %s: %s' % (url, exc.code, exc.reason)
    except (URLError, OSError, ValueError) as exc:
        return None, '%s answered nothing: %s' % (url, getattr(exc, 'reason', exc))


def url_check(name, url, retries=0, delay=0):
    """Whether ``url`` answers 200 (within the tries)."""
    passed, (status, reason) = _tries(retries, delay, lambda: _url_try(url))
    if passed:
        return check(name, True, '%s answers 200' % url)
    return check(name, False, '%s answered %s: %s' % (url, 'nothing' if status is None else status, reason))


def _url_try(url):
    status, reason = fetch_status(url)
    return status == 200, (status, reason)
