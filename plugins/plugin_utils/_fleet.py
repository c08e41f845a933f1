# -*- coding: utf-8 -*-
# Copyright (c) 2026 lastgood.rollback contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet's view of a run, computed once on the controller: the gate after each phase and the outcome.

Plain functions over plain data (host names, the ``lastgood_host`` fact of each host, the gates),
so they are tested without Ansible; the action plugins fleet_gate and fleet_outcome only gather
their inputs from the task's variables.

A gate is taken after each phase.  The hosts that did not get through the phase (failed in it and
being rescued, or unreachable) are *lagging*; when they are more than the run's
``max_fail_percentage`` of the population, every host still running is *stopped* (its run step
fails it, so it goes to the rescue and restores its checkpoint) and the fleet is never left half
changed.  Ansible's own max_fail_percentage cannot do this: a host that is being rescued does not
count as failed.
"""

from __future__ import annotations

import datetime
import secrets

TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
UNREACHABLE_MESSAGE = 'host unreachable or stopped before the end of the run'
NO_RESTORE = {'attempted': False, 'restored': False, 'verified': False, 'message': ''}
# The keys of set_stats lastgood_run, which AWX workflow nodes read.
RUN_STATS_KEYS = ('run_id', 'operation', 'level', 'outcome', 'checkpoint', 'failed_hosts', 'stopped_hosts', 'paused_hosts',
                  'restored_hosts')


def utc_now(now=None):
    """``now`` (a datetime, default the current time) as ``%Y-%m-%dT%H:%M:%SZ`` in UTC."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def new_run_id(now=None, token=None):
    """A fleet-wide run id: ``%Y%m%dT%H%M%SZ-<6 hex>`` (UTC), as the playbooks chose it before."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return '%s-%s' % (now.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ'),
                      token if token is not None else secrets.token_hex(3))


def lagging_hosts(population, play_hosts, failed_hosts):
    """The hosts of ``population`` that did not get through the phase, in population order.

    A host lags when it is no longer among ``play_hosts`` (unreachable, or removed by Ansible) or is
    in ``failed_hosts`` (it failed in the block and is being rescued).
    """
    running = set(play_hosts)
    failed = set(failed_hosts)
    return [host for host in population if host not in running or host in failed]


def _join(hosts):
    return ', '.join(hosts)


def gate_message(phase, population, lagging, max_fail_percentage, closed, required_lagging, stop):
    """What the gate says, for the operator and as the reason each stopped host fails."""
    if not lagging:
        return 'All %d hosts got through %s.' % (len(population), phase)
    counted = '%d of %d hosts failed or became unreachable during %s (%s)' % (
        len(lagging), len(population), phase, _join(lagging))
    if closed:
        return ('%s, more than the %d %% this run allows; every host still running (%s) restores its '
                'checkpoint next, so the fleet is not left half changed' % (
                    counted, max_fail_percentage, _join(stop) or 'none'))
    if required_lagging:
        return ('%s: required host(s) %s did not pass, so the other hosts go no further and restore their '
                'checkpoint (%s)' % (counted, _join(required_lagging), _join(stop) or 'none'))
    return '%s, within the %d %% this run allows; the other hosts go on.' % (counted, max_fail_percentage)


def gate(phase, population, play_hosts, failed_hosts, max_fail_percentage=0, required_hosts=(), time=None):
    """The gate of ``phase``: ``{phase, time, population, lagging, closed, stop, message}``.

    ``closed`` when the lagging hosts are more than ``max_fail_percentage`` of the population; then
    ``stop`` holds every running host.  Independently, when a host of ``required_hosts`` lags (the
    staging hosts of a staged rollout), every running host that is not required is stopped too.
    """
    population = list(population)
    lagging = lagging_hosts(population, play_hosts, failed_hosts)
    running = [host for host in population if host not in lagging]
    closed = len(lagging) * 100 > int(max_fail_percentage) * len(population)
    required = set(required_hosts)
    required_lagging = [host for host in lagging if host in required]
    if closed:
        stop = running
    elif required_lagging:
        stop = [host for host in running if host not in required]
    else:
        stop = []
    return {
        'phase': phase,
        'time': time or utc_now(),
        'population': population,
        'lagging': lagging,
        'closed': closed,
        'stop': stop,
        'message': gate_message(phase, population, lagging, int(max_fail_percentage), closed, required_lagging,
                                stop),
    }


def stop_message(entry, host):
    """Why ``host`` stops at the gate ``entry``: the gate's message, naming the host."""
    return 'Stopping the run on %s: %s' % (host, entry['message'])


def run_gates(gates, run_id):
    """The gates of run ``run_id`` only.

    Facts an action returns go to Ansible's fact cache; with fact caching on (AWX's fact storage),
    a later run starts with the gates of an earlier one, which must not count as passed phases.
    """
    return dict((phase, entry) for phase, entry in (gates or {}).items()
                if isinstance(entry, dict) and entry.get('run_id') == run_id)


def _passed(entry):
    """The hosts through an entry's phase: the ones it records, else its population less the lagging ones."""
    if 'passed' in entry:
        return list(entry['passed'])
    return [host for host in entry.get('population', ()) if host not in entry.get('lagging', ())]


def add_gate(gates, entry):
    """``gates`` (the run's gates so far, by phase; not changed) with ``entry`` added or replacing its phase.

    A phase gated more than once (deploy_staged gates each stage) keeps every host that got through it
    at any of its gates in ``passed``: a host that passed ``deploy`` in its own stage and failed ``verify``
    lags at a later stage's ``deploy`` gate, but it did get through ``deploy``.
    """
    updated = dict(gates or {})
    earlier = updated.get(entry['phase'])
    through = _passed(earlier) if earlier else []
    now = [host for host in entry.get('population', ()) if host not in entry.get('lagging', ())]
    entry = dict(entry, passed=through + [host for host in now if host not in through])
    updated[entry['phase']] = entry
    return updated


def passed(gates, host, phase):
    """Whether ``host`` got through ``phase``: at one of the phase's gates it was counted and not lagging."""
    entry = (gates or {}).get(phase)
    if entry is None:
        return False
    if 'passed' in entry:
        return host in entry['passed']
    return host not in entry.get('lagging', ())


def passed_phases(gates, host, phases):
    """The phases of ``phases`` (in that order) ``host`` passed; every gated phase when ``phases`` is empty."""
    return [phase for phase in (phases or list(gates or {})) if passed(gates, host, phase)]


def stopping_gate(gates, host, phases):
    """The gate that stopped ``host`` (the gate of the last phase it passed, when that stopped it), or None."""
    done = passed_phases(gates, host, phases)
    if not done:
        return None
    entry = gates[done[-1]]
    return entry if host in entry.get('stop', ()) else None


def failure_place(gates, host, phases):
    """Where the run failed on ``host`` as its rescue records it: ``{phase, stopped_by_fleet, failed_hosts}``.

    A host a gate stopped got through its own phase: the phase is the gate's, and the hosts that
    failed are the gate's lagging hosts.  Otherwise it is the first phase the host did not pass.
    """
    entry = stopping_gate(gates, host, phases)
    if entry is not None:
        return {'phase': entry['phase'], 'stopped_by_fleet': True, 'failed_hosts': list(entry['lagging'])}
    done = passed_phases(gates, host, phases)
    return {'phase': next((p for p in phases if p not in done), 'end'), 'stopped_by_fleet': False,
            'failed_hosts': [host]}


def unreachable_failure(host, passed, phases):
    """The failure recorded for a host that never got to its rescue or end (unreachable or removed)."""
    phase = next((p for p in phases if p not in passed), 'end')
    return {'phase': phase, 'task': '', 'message': UNREACHABLE_MESSAGE, 'stopped_by_fleet': False,
            'failed_hosts': [host]}


def host_summary(host, record, gates, phases, reachable=True):
    """How the run ended on ``host``, from its ``lastgood_host`` fact (``record``, None when unset).

    A host without an outcome that is no longer reachable counts as ``unreachable``; one still in the
    play that has no outcome yet (its run has not ended) counts as ``success``.
    """
    record = record or {}
    # a phase left for a later job (the run paused before it) has a gate that let every host through
    done = [phase for phase in passed_phases(gates, host, phases) if phase not in (record.get('held') or [])]
    outcome = record.get('outcome') or ('success' if reachable else 'unreachable')
    failure = record.get('failure')
    if failure is None and outcome == 'unreachable':
        failure = unreachable_failure(host, done, phases)
    return {
        'outcome': outcome,
        'passed_phases': done,
        'phase_times': dict((phase, gates[phase]['time']) for phase in done),
        'started': record.get('started'),
        'finished': record.get('finished'),
        'attempt': record.get('attempt'),
        'failure': failure,
        'restore': record.get('restore') or dict(NO_RESTORE),
        'stopped_by_fleet': bool((failure or {}).get('stopped_by_fleet')),
        'skipped': list(record.get('skipped') or []),
    }


def classify(hosts):
    """The run's host lists and outcome from per-host summaries (``{name: {outcome, failure, restore}}``).

    Used for one play's hosts and for the hosts of every slice merged into one report.  A host the
    gate stopped because others failed, whose checkpoint is back (outcome ``failed``), is *stopped*;
    one whose checkpoint could not be put back (``restore_failed``) has failed too.  A host whose run the
    operator aborted (checkpoint back, run closed) is *aborted*; a run aborted on every host that did not
    succeed is ``aborted``.  A host whose run this job paused after a phase (the run stays open for the next
    job, an AWX workflow's node) is *paused*; a run paused on every host that did not succeed is ``paused``.
    """
    names = list(hosts)

    def outcome(name):
        return (hosts[name] or {}).get('outcome')

    succeeded = [name for name in names if outcome(name) == 'success']
    stopped = [name for name in names if outcome(name) == 'failed'
               and ((hosts[name] or {}).get('failure') or {}).get('stopped_by_fleet')]
    aborted = [name for name in names if outcome(name) == 'aborted']
    paused = [name for name in names if outcome(name) == 'paused']
    failed = [name for name in names if outcome(name) not in ('success', 'aborted', 'paused') and name not in stopped]
    if failed + stopped:
        overall = 'partial' if succeeded or aborted or paused else 'failed'
    elif aborted:
        overall = 'aborted'
    else:
        overall = 'paused' if paused else 'success'
    return {
        'outcome': overall,
        'succeeded_hosts': succeeded,
        'paused_hosts': paused,
        'aborted_hosts': aborted,
        'failed_hosts': failed,
        'stopped_hosts': stopped,
        'unreachable_hosts': [name for name in names if outcome(name) == 'unreachable'],
        'restored_hosts': [name for name in names if ((hosts[name] or {}).get('restore') or {}).get('restored')],
    }


def earliest(times):
    """The earliest of ISO UTC ``times`` (None and '' ignored), or None."""
    known = [value for value in times if value]
    return min(known) if known else None


def latest(times):
    """The latest of ISO UTC ``times`` (None and '' ignored), or None."""
    known = [value for value in times if value]
    return max(known) if known else None


def fleet_summary(run, records, gates, phases, reachable):
    """The run's fleet summary (the ``lastgood_fleet`` fact): ``run`` holds run_id, operation, level and
    checkpoint; ``records`` maps every host of the run to its ``lastgood_host`` (or None);
    ``reachable`` is the set of hosts still in the play.
    """
    hosts = dict((name, host_summary(name, record, gates, phases, name in reachable))
                 for name, record in records.items())
    summary = {
        'run_id': run.get('run_id'),
        'operation': run.get('operation'),
        'level': run.get('level'),
        'checkpoint': run.get('checkpoint', ''),
        'started': earliest(host['started'] for host in hosts.values()),
        'finished': latest(host['finished'] for host in hosts.values()),
        'hosts': hosts,
    }
    summary.update(classify(hosts))
    return summary


def run_stats(fleet):
    """The ``lastgood_run`` statistics of a fleet summary, as AWX workflow nodes read them."""
    return dict((key, fleet.get(key)) for key in RUN_STATS_KEYS)
