import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _fsatomic, _lock
from lib import faults

COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', '.collections')
RACERS = 4
TRIALS = 40


def _lock_path(tmp_path):
    return str(tmp_path / 'locks' / '.lock')


def test_acquire_writes_the_holder_and_a_second_run_fails_naming_it(tmp_path):
    path = _lock_path(tmp_path)
    result = _lock.acquire(path, 'run-a', ttl=600, pid=os.getpid(), user='alice')
    assert result['changed'] is True and result['previous'] is None
    with open(path) as handle:
        holder = json.load(handle)
    assert {key: holder[key] for key in ('run_id', 'host', 'pid', 'user', 'ttl')} == {
        'run_id': 'run-a', 'host': socket.gethostname(), 'pid': os.getpid(), 'user': 'alice', 'ttl': 600}
    assert _audit.parse_ts(holder['created']) > 0
    with pytest.raises(_lock.LockHeld) as raised:
        _lock.acquire(path, 'run-b')
    assert 'run-a' in str(raised.value) and 'pid %d' % os.getpid() in str(raised.value)
    assert raised.value.holder['run_id'] == 'run-a'


def test_acquiring_again_with_the_same_run_id_changes_nothing(tmp_path):
    path = _lock_path(tmp_path)
    _lock.acquire(path, 'run-a')
    before = open(path, 'rb').read()
    assert _lock.acquire(path, 'run-a')['changed'] is False
    assert open(path, 'rb').read() == before


def test_a_wrong_run_id_cannot_release_the_lock(tmp_path):
    path = _lock_path(tmp_path)
    _lock.acquire(path, 'run-a')
    before = open(path, 'rb').read()
    with pytest.raises(_lock.LockHeld, match='not released'):
        _lock.release(path, 'run-b')
    assert open(path, 'rb').read() == before
    assert _lock.release(path, 'run-a')['changed'] is True
    assert not os.path.exists(path)
    assert _lock.release(path, 'run-a')['changed'] is False


def _acquire_then_exit(path):
    _lock.acquire(path, 'dead-run', pid=os.getpid())


def test_a_stale_lock_from_a_dead_pid_is_taken_over(tmp_path):
    path = _lock_path(tmp_path)
    proc = multiprocessing.get_context('fork').Process(target=_acquire_then_exit, args=(path,))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert _lock.status(path)['stale_reason'] == 'pid %d on host %s is dead' % (proc.pid, socket.gethostname())
    audit_log = str(tmp_path / 'audit.jsonl')
    result = _lock.acquire(path, 'live-run', audit_log=audit_log)
    assert result['previous']['run_id'] == 'dead-run' and 'dead' in result['took_over']
    assert _lock.status(path)['holder']['run_id'] == 'live-run'
    assert [r['event'] for r in _audit.records(audit_log)] == ['lock_stale_taken_over']


def test_a_pid_reused_by_another_process_makes_the_lock_stale(tmp_path):
    path = _lock_path(tmp_path)
    holder = _lock.new_holder('old-run', 600, pid=os.getpid())
    holder['pid_start'] -= 1
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        json.dump(holder, handle)
    assert 'another process' in _lock.status(path)['stale_reason']
    assert _lock.acquire(path, 'new-run')['previous']['run_id'] == 'old-run'


def test_a_lock_from_before_a_reboot_is_stale(tmp_path):
    path = _lock_path(tmp_path)
    holder = _lock.new_holder('old-run', 600, pid=os.getpid())
    holder['boot_id'] = 'another-boot'
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        json.dump(holder, handle)
    assert 'rebooted' in _lock.status(path)['stale_reason']


@pytest.mark.parametrize('age, stale', [(599, False), (600, True), (601, True)])
def test_the_lock_is_stale_exactly_when_its_ttl_has_run_out(tmp_path, age, stale):
    path = _lock_path(tmp_path)
    _lock.acquire(path, 'run-a', ttl=600, now=1000000.0)
    status = _lock.status(path, now=1000000.0 + age)
    assert status['stale'] is stale and status['held'] is (not stale)


def test_a_live_pid_on_another_host_is_left_to_the_ttl(tmp_path):
    path = _lock_path(tmp_path)
    holder = _lock.new_holder('remote-run', 600, pid=2 ** 22 + 7)
    holder['host'] = 'some-other-host'
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        json.dump(holder, handle)
    assert _lock.status(path)['held'] is True


def test_an_unreadable_lock_file_is_moved_aside_and_never_taken_over(tmp_path):
    path = _lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write('{"run_id": "half')
    with pytest.raises(_lock.LockCorrupt) as raised:
        _lock.acquire(path, 'run-a')
    [quarantined] = raised.value.quarantined
    assert quarantined in str(raised.value) and open(quarantined).read() == '{"run_id": "half'
    status = _lock.status(path)
    assert status['held'] is True and status['holder']['corrupt_copy'] == quarantined
    with pytest.raises(_lock.LockHeld, match='unknown run'):
        _lock.acquire(path, 'run-b', now=time.time() + 10 * _lock.DEFAULT_TTL)


def test_force_breaks_a_live_lock_only_after_writing_the_audit_event(tmp_path):
    path = _lock_path(tmp_path)
    audit_log = str(tmp_path / 'audit.jsonl')
    _lock.acquire(path, 'run-a', pid=os.getpid())
    result = _lock.acquire(path, 'run-b', force=True, audit_log=audit_log)
    assert result['previous']['run_id'] == 'run-a' and result['took_over'] == 'forced by run run-b'
    events = _audit.records(audit_log)
    assert [(e['event'], e['level'], e['run_id']) for e in events] == [('lock_forced', 'warning', 'run-b')]
    assert events[0]['detail']['previous_holder']['run_id'] == 'run-a'
    assert _lock.status(path)['holder']['run_id'] == 'run-b'
    assert _audit.verify(audit_log)['ok'] is True


def test_force_release_of_another_runs_lock_is_audited(tmp_path):
    path = _lock_path(tmp_path)
    audit_log = str(tmp_path / 'audit.jsonl')
    _lock.acquire(path, 'run-a')
    assert _lock.release(path, 'operator', force=True, audit_log=audit_log)['previous']['run_id'] == 'run-a'
    assert not os.path.exists(path)
    assert [e['event'] for e in _audit.records(audit_log)] == ['lock_forced']


def test_force_without_a_working_audit_log_breaks_nothing(tmp_path):
    path = _lock_path(tmp_path)
    _lock.acquire(path, 'run-a')
    before = open(path, 'rb').read()
    with pytest.raises(_lock.LockError, match='needs an audit log'):
        _lock.acquire(path, 'run-b', force=True, audit_log=None)
    blocker = tmp_path / 'not-a-dir'
    blocker.write_text('')
    with pytest.raises(_lock.LockError, match='could not write the audit event'):
        _lock.acquire(path, 'run-b', force=True, audit_log=str(blocker / 'audit.jsonl'))
    assert open(path, 'rb').read() == before


def test_check_mode_reports_and_writes_nothing(tmp_path):
    path = _lock_path(tmp_path)
    assert _lock.acquire(path, 'run-a', check=True)['changed'] is True
    assert not os.path.exists(os.path.dirname(path))
    _lock.acquire(path, 'run-a')
    before = sorted(os.listdir(os.path.dirname(path))), open(path, 'rb').read()
    with pytest.raises(_lock.LockHeld):
        _lock.acquire(path, 'run-b', check=True)
    assert _lock.release(path, 'run-a', check=True)['changed'] is True
    assert (sorted(os.listdir(os.path.dirname(path))), open(path, 'rb').read()) == before


def _race(path, barrier, results, trial, racer, audit_log):
    barrier.wait()
    try:
        _lock.acquire(path, 'trial%d-racer%d' % (trial, racer), audit_log=audit_log)
        results.put((trial, racer, True))
    except _lock.LockHeld:
        results.put((trial, racer, False))


def _run_races(tmp_path, prepare):
    context = multiprocessing.get_context('fork')
    results = context.Queue()
    winners = []
    for trial in range(TRIALS):
        path = str(tmp_path / ('trial%d' % trial) / '.lock')
        audit_log = prepare(path)
        barrier = context.Barrier(RACERS)
        procs = [context.Process(target=_race, args=(path, barrier, results, trial, racer, audit_log))
                 for racer in range(RACERS)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        assert [proc.exitcode for proc in procs] == [0] * RACERS
        outcomes = [results.get(timeout=30) for _racer in range(RACERS)]
        won = [racer for _trial, racer, ok in outcomes if ok]
        assert len(won) == 1, 'trial %d: winners %s' % (trial, won)
        assert _lock.status(path)['holder']['run_id'] == 'trial%d-racer%d' % (trial, won[0])
        winners.append(won[0])
    return winners


def test_processes_racing_for_a_free_lock_produce_exactly_one_winner_every_time(tmp_path):
    _run_races(tmp_path, lambda path: None)


def test_processes_racing_to_take_over_a_stale_lock_produce_exactly_one_winner_every_time(tmp_path):
    def prepare(path):
        os.makedirs(os.path.dirname(path))
        holder = _lock.new_holder('dead-run', 600, pid=os.getpid())
        holder['pid_start'] = -1
        with open(path, 'w') as handle:
            json.dump(holder, handle)
        return str(tmp_path / 'audit.jsonl')
    _run_races(tmp_path, prepare)
    takeovers = [r for r in _audit.records(str(tmp_path / 'audit.jsonl')) if r['event'] == 'lock_stale_taken_over']
    assert len(takeovers) == TRIALS


def test_acquire_leaves_either_no_lock_or_a_complete_one_at_every_fault(tmp_path):
    path = _lock_path(tmp_path)
    os.makedirs(os.path.dirname(path))

    def check(k, plan, error):
        status = _lock.status(path)
        if error is None:
            assert status['held'] and status['holder']['run_id'] == 'run-a', 'fault %d' % k
        else:
            assert status['holder'] is None, 'fault %d (%s) left %r' % (k, plan.fired_call, status)
        assert not [n for n in os.listdir(tmp_path / 'locks') if n.startswith(_fsatomic.TMP_PREFIX)]
        if os.path.exists(path):
            os.unlink(path)

    points = faults.sweep([_lock, _audit, _fsatomic], lambda: _lock.acquire(path, 'run-a'), check)
    assert points >= 6


def test_a_failed_stale_takeover_leaves_the_stale_holder_or_no_lock_at_every_fault(tmp_path):
    path = _lock_path(tmp_path)
    audit_log = str(tmp_path / 'audit.jsonl')
    os.makedirs(os.path.dirname(path))
    stale = _lock.new_holder('dead-run', 600, pid=os.getpid())
    stale['pid_start'] = -1
    stale_bytes = json.dumps(stale).encode()

    def reset():
        with open(path, 'wb') as handle:
            handle.write(stale_bytes)

    def check(k, plan, error):
        holder = _lock.status(path)['holder']
        if error is None:
            assert holder['run_id'] == 'run-a', 'fault %d (%s)' % (k, plan.fired_call)
        else:
            assert holder is None or holder['run_id'] == 'dead-run', 'fault %d (%s) left %r' % (k, plan.fired_call, holder)
        assert not [n for n in os.listdir(tmp_path / 'locks') if n.startswith(_fsatomic.TMP_PREFIX)]
        assert _audit.verify(audit_log)['ok'] is True
        reset()

    reset()
    points = faults.sweep([_lock, _audit, _fsatomic], lambda: _lock.acquire(path, 'run-a', audit_log=audit_log), check)
    assert points >= 10


def test_a_holder_in_another_process_survives_until_it_exits(tmp_path):
    path = _lock_path(tmp_path)
    code = ('import sys, time; sys.path.insert(0, %r); '
            'from ansible_collections.lastgood.rollback.plugins.module_utils import _lock; '
            '_lock.acquire(%r, "child", pid=__import__("os").getpid()); print("held", flush=True); '
            'sys.stdin.readline()' % (COLLECTIONS, path))
    child = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == 'held'
        with pytest.raises(_lock.LockHeld):
            _lock.acquire(path, 'parent')
    finally:
        child.communicate('\n', timeout=30)
    assert _lock.acquire(path, 'parent')['previous']['run_id'] == 'child'


def test_invalid_run_ids_are_refused(tmp_path):
    for run_id in ('', '../escape', '.hidden', 'a' * 129, 'with space'):
        with pytest.raises(_lock.LockError, match='not valid'):
            _lock.acquire(_lock_path(tmp_path), run_id)
