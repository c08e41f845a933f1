"""Corrupt bookkeeping files: moved aside read-only with their bytes, named, never written; the run state rebuilt."""

import hashlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _fsatomic, _lock, _quarantine, _run, _state
from lib import faults

RUN = 'run-7'
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# the ways a file's bytes go bad: (name, damage(bytes) -> bytes)
DAMAGE = [
    ('empty', lambda data: b''),
    ('truncated', lambda data: data[:len(data) // 2]),
    ('flipped byte', lambda data: bytes([data[0] ^ 0x20]) + data[1:]),
    ('garbage', lambda data: b'\x8f\x00 garbage \x01' * 4),
    ('invalid utf-8', lambda data: data[:3] + b'\xff\xfe' + data[5:]),
]
IDS = [case[0] for case in DAMAGE]


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def write(path, data):
    with open(path, 'wb') as handle:
        handle.write(data)


def assert_quarantined(quarantined, original, data):
    """``quarantined`` is beside ``original``, read-only, and holds exactly ``data``."""
    assert os.path.dirname(quarantined) == os.path.dirname(original)
    assert os.path.basename(quarantined).startswith(os.path.basename(original) + _quarantine.SUFFIX)
    assert os.stat(quarantined).st_mode & 0o777 == 0o444 and read(quarantined) == data


# -- the shared helper ---------------------------------------------------------------------

def test_quarantine_never_overwrites_an_earlier_quarantined_copy(tmp_path):
    path = str(tmp_path / 'state.json')
    copies = []
    for number in range(3):
        write(path, b'bad %d' % number)
        copies.append(_quarantine.quarantine(path, now=1765148100.5))
    assert len(set(copies)) == 3 and [read(copy) for copy in copies] == [b'bad 0', b'bad 1', b'bad 2']
    assert not os.path.exists(path)


def test_quarantine_puts_the_replacement_in_place_once_the_copy_is_safe(tmp_path):
    path = str(tmp_path / '.lock')
    write(path, b'{"run_id": "ha')
    quarantined = _quarantine.quarantine(path, replacement=lambda copy: copy.encode() + b'\n', mode=0o644)
    assert_quarantined(quarantined, path, b'{"run_id": "ha')
    assert read(path) == quarantined.encode() + b'\n' and os.stat(path).st_mode & 0o777 == 0o644


def test_quarantine_falls_back_to_a_rename_where_hard_links_are_refused(tmp_path, monkeypatch):
    path = str(tmp_path / 'state.json')
    write(path, b'bad')

    def no_links(*_args, **_kwargs):
        raise PermissionError(1, 'Operation not permitted')
    monkeypatch.setattr(os, 'link', no_links)
    quarantined = _quarantine.quarantine(path)
    assert_quarantined(quarantined, path, b'bad')
    assert not os.path.exists(path)


@pytest.mark.parametrize('replace', [False, True], ids=['removed', 'replaced'])
def test_no_fault_at_any_step_of_a_quarantine_loses_the_corrupt_bytes(tmp_path, replace):
    path = str(tmp_path / 'state.json')
    write(path, b'corrupt bytes')
    replacement = (lambda copy: b'marker\n') if replace else None

    def check(k, plan, error):
        copies = [os.path.join(str(tmp_path), name) for name in os.listdir(str(tmp_path))
                  if name.startswith('state.json' + _quarantine.SUFFIX)]
        holders = copies + ([path] if os.path.exists(path) and read(path) == b'corrupt bytes' else [])
        assert [read(holder) for holder in holders if read(holder) == b'corrupt bytes'], \
            'fault %d lost the corrupt bytes' % k
        if error is None:
            assert len(copies) == 1 and os.stat(copies[0]).st_mode & 0o777 == 0o444
        for copy in copies:
            os.chmod(copy, 0o600)
            os.unlink(copy)
        for name in os.listdir(str(tmp_path)):
            os.unlink(os.path.join(str(tmp_path), name))
        write(path, b'corrupt bytes')

    points = faults.sweep([_quarantine, _fsatomic], lambda: _quarantine.quarantine(path, replacement=replacement),
                          check)
    assert points >= 5


# -- the run state -------------------------------------------------------------------------

@pytest.fixture
def work(tmp_path):
    (tmp_path / 'store' / 'app').mkdir(parents=True)
    return tmp_path


def settings_for(work):
    return _run.RunSettings({
        'run_id': RUN, 'operation': 'rollback_level2', 'level': 2, 'checkpoint': 'cp', 'checkpoint_paths': [],
        'keep_phases': ['checkpoint'], 'backup_root': str(work / 'store'), 'set': 'app',
        'state_dir': str(work / 'runs'), 'audit_log': str(work / 'log' / 'audit.jsonl'), 'lock_path': '',
        'lock_ttl': 600, 'user': None,
    })


def a_run_that_failed_and_resumed(work):
    """A real run through the run module's steps: two phases, a failure, a resumed attempt, one more phase."""
    run = settings_for(work)
    host, _changed = _run.begin(run, {})
    _run.record_phase(run, host, 'preflight', {'disk_ok': True})
    _run.record_phase(run, host, 'checkpoint', {'checkpoint': 'cp'})
    failure = {'phase': 'apply', 'task': 'Reload', 'message': 'reload failed', 'stopped_by_fleet': False,
               'failed_hosts': []}
    host, _changed = _run.rescue(run, host, failure, ['preflight', 'checkpoint'], None, False, None)
    _run.end(run, host)
    host, _changed = _run.begin(run, {})
    _run.record_phase(run, host, 'apply', {'reloaded': True})
    return run


def comparable(state):
    """What a rebuild promises to get back: everything but the times and meta the audit log lacks."""
    return {key: value for key, value in state.items() if key not in ('created', 'updated', 'rebuilt')}


@pytest.mark.parametrize('name, damage', DAMAGE, ids=IDS)
def test_a_corrupt_run_state_is_rebuilt_from_the_audit_log_exactly(work, name, damage):
    run = a_run_that_failed_and_resumed(work)
    path = _state.state_path(run.state_dir, RUN)
    truth = _state.load(run.state_dir, RUN)
    data = damage(read(path))
    write(path, data)
    result = _state.get(run.state_dir, RUN, audit_log=run.audit_log)
    [quarantined] = result['repair']['quarantined']
    assert_quarantined(quarantined, path, data)
    assert comparable(result['state']) == comparable(truth)
    assert result['state']['attempts'] == 2 and result['state']['completed_phases'] == ['preflight', 'checkpoint', 'apply']
    assert result['changed'] is True and _state.load(run.state_dir, RUN)['rebuilt']['quarantined'] == quarantined
    assert any(quarantined in warning and 'not rebuilt' in warning for warning in result['repair']['warnings'])
    [event] = _audit.query(run.audit_log, events=['run_state_quarantined'])
    assert event['detail']['quarantined'] == quarantined and event['detail']['rebuilt'] is True


def test_the_run_resumes_where_it_was_after_its_state_was_rebuilt(work):
    run = a_run_that_failed_and_resumed(work)
    write(_state.state_path(run.state_dir, RUN), b'{"version": 1')
    warnings = []
    host, _changed = _run.begin(run, {}, warn=warnings.append)
    assert host['attempt'] == 2 and host['completed'] == ['preflight', 'checkpoint', 'apply']
    assert len(warnings) == 1 and 'rebuilt from the audit log' in warnings[0]


def test_a_run_state_is_not_rebuilt_from_an_audit_log_whose_chain_is_broken(work):
    run = a_run_that_failed_and_resumed(work)
    path = _state.state_path(run.state_dir, RUN)
    write(path, b'garbage')
    rotated = run.audit_log + '.000001'
    os.rename(run.audit_log, rotated)
    edited = read(rotated).replace(b'"disk_ok":true', b'"disk_ok":false')
    write(rotated, edited)
    with pytest.raises(_state.StateCorrupt) as raised:
        _state.start(run.state_dir, RUN, audit_log=run.audit_log)
    message = str(raised.value)
    [quarantined] = raised.value.quarantined
    assert quarantined in message and 'fails its chain check' in message and 'starts it over' in message
    assert_quarantined(quarantined, path, b'garbage')
    assert not os.path.exists(path) and read(rotated) == edited


@SETTINGS
@given(position=st.integers(0, 10 ** 6), garbage=st.binary(min_size=1, max_size=8))
def test_any_damage_to_a_run_state_is_quarantined_or_harmless(tmp_path_factory, position, garbage):
    work = tmp_path_factory.mktemp('state')
    (work / 'store' / 'app').mkdir(parents=True)
    run = a_run_that_failed_and_resumed(work)
    path = _state.state_path(run.state_dir, RUN)
    truth = _state.load(run.state_dir, RUN)
    original = read(path)
    position %= len(original)
    data = original[:position] + garbage + original[position + len(garbage):]
    write(path, data)
    result = _state.get(run.state_dir, RUN, audit_log=run.audit_log)
    if result['repair'] is None:
        # the damage left a valid state (inside a string, say): it is used as it is, never rewritten
        assert read(path) == data
        return
    [quarantined] = result['repair']['quarantined']
    assert_quarantined(quarantined, path, data)
    assert comparable(result['state']) == comparable(truth)


# -- the lock ------------------------------------------------------------------------------

@pytest.mark.parametrize('name, damage', DAMAGE, ids=IDS)
def test_a_corrupt_lock_is_quarantined_and_held_by_an_unknown_run_until_forced(tmp_path, name, damage):
    path = str(tmp_path / '.lock')
    audit_log = str(tmp_path / 'audit.jsonl')
    _lock.acquire(path, 'run-a', pid=os.getpid())
    data = damage(read(path))
    write(path, data)
    with pytest.raises(_lock.LockCorrupt) as raised:
        _lock.acquire(path, 'run-b', audit_log=audit_log)
    [quarantined] = raised.value.quarantined
    assert quarantined in str(raised.value) and path in str(raised.value)
    assert_quarantined(quarantined, path, data)
    for run_id in ('run-a', 'run-b'):
        with pytest.raises(_lock.LockHeld, match='unknown run'):
            _lock.acquire(path, run_id)
        with pytest.raises(_lock.LockHeld, match='unknown run'):
            _lock.release(path, run_id)
    taken = _lock.acquire(path, 'run-b', force=True, audit_log=audit_log)
    assert taken['previous']['corrupt_copy'] == quarantined and _lock.status(path)['holder']['run_id'] == 'run-b'
    [forced] = _audit.query(audit_log, events=['lock_forced'])
    assert forced['detail']['previous_holder']['corrupt_copy'] == quarantined
    assert read(quarantined) == data


def test_releasing_a_corrupt_lock_quarantines_it_and_keeps_it_held(tmp_path):
    path = str(tmp_path / '.lock')
    _lock.acquire(path, 'run-a')
    write(path, b'\x00' * 40)
    with pytest.raises(_lock.LockCorrupt) as raised:
        _lock.release(path, 'run-a')
    assert_quarantined(raised.value.quarantined[0], path, b'\x00' * 40)
    assert _lock.status(path)['held'] is True


def test_check_mode_and_status_report_a_corrupt_lock_and_move_nothing(tmp_path):
    path = str(tmp_path / '.lock')
    _lock.acquire(path, 'run-a')
    write(path, b'{"run_')
    assert _lock.status(path)['held'] is True
    with pytest.raises(_lock.LockHeld, match='unreadable'):
        _lock.acquire(path, 'run-b', check=True)
    assert read(path) == b'{"run_' and sorted(os.listdir(tmp_path)) == ['.lock', '.lock.guard']


# -- the audit log -------------------------------------------------------------------------

def a_log(tmp_path, lines=4):
    path = str(tmp_path / 'audit.jsonl')
    for number in range(lines):
        _audit.append(path, 'event-%d' % number, run_id=RUN, detail={'n': number})
    return path


def assert_new_log_names(path, quarantined, data, head):
    """The new live file opens with a record pinning the quarantined file; the chain verifies."""
    records = _audit.records(path)
    assert records[0]['event'] == _audit.QUARANTINED and records[0]['level'] == 'critical'
    assert records[0]['detail']['quarantined'] == quarantined
    assert records[0]['detail']['head_quarantined'] == head
    assert_quarantined(quarantined, path, data)
    verified = _audit.verify(path)
    assert verified['ok'] and [item['file'] for item in verified['quarantined']] == [quarantined]
    assert quarantined in verified['message']


@pytest.mark.parametrize('name, damage', DAMAGE[1:], ids=IDS[1:])
def test_an_append_never_extends_a_corrupt_log(tmp_path, name, damage):
    path = a_log(tmp_path)
    data = read(path)
    # damage inside a complete line: a fragment after the last newline is an interrupted append, cut by design
    cut = data.index(b'\n') + 1
    damaged = damage(data[:cut])
    data = damaged + data[cut:] if damaged.endswith(b'\n') else damaged + b'\n' + data[cut:]
    write(path, data)
    result = _audit.append(path, 'after', run_id=RUN)
    quarantined, head = result['quarantined']
    assert_new_log_names(path, quarantined, data, head)
    assert [record['event'] for record in _audit.records(path)] == [_audit.QUARANTINED, 'after']


def test_lines_removed_from_the_end_are_caught_by_the_head_before_an_append(tmp_path):
    path = a_log(tmp_path)
    data = read(path)
    data = data[:data.rindex(b'\n', 0, len(data) - 1) + 1]
    write(path, data)
    result = _audit.append(path, 'after', run_id=RUN)
    assert_new_log_names(path, result['quarantined'][0], data, result['quarantined'][1])
    assert 'head' in _audit.records(path)[0]['detail']['reason']


def test_an_emptied_log_whose_head_records_a_line_is_quarantined(tmp_path):
    path = a_log(tmp_path)
    head = read(_audit.head_path(path))
    write(path, b'')
    quarantined, head_quarantined = _audit.append(path, 'after', run_id=RUN)['quarantined']
    assert_new_log_names(path, quarantined, b'', head_quarantined)
    assert read(head_quarantined) == head


def test_a_new_log_chains_to_the_rotated_files(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    for number in range(6):
        _audit.append(path, 'event-%d' % number, run_id=RUN, rotate_bytes=600)
    assert _audit.rotated_files(path)
    write(path, read(path).replace(b'event-5', b'event-X'))
    result = _audit.append(path, 'after', run_id=RUN)
    verified = _audit.verify(path)
    assert result['quarantined'] and verified['ok'] and verified['quarantined']


def test_verify_fails_when_a_quarantined_file_is_changed_or_removed(tmp_path):
    path = a_log(tmp_path)
    write(path, read(path).replace(b'event-2', b'event-X'))
    quarantined = _audit.append(path, 'after', run_id=RUN)['quarantined'][0]
    os.chmod(quarantined, 0o644)
    write(quarantined, b'')
    assert not _audit.verify(path)['ok'] and 'changed' in _audit.verify(path)['message']
    os.unlink(quarantined)
    assert not _audit.verify(path)['ok']


def test_a_sound_log_is_never_quarantined(tmp_path):
    path = a_log(tmp_path, lines=20)
    assert _audit.append(path, 'after', run_id=RUN)['quarantined'] == []
    assert sorted(os.listdir(tmp_path)) == ['audit.jsonl', 'audit.jsonl.head']


def test_a_first_line_whose_head_was_never_written_is_not_taken_for_corruption(tmp_path):
    path = a_log(tmp_path, lines=1)
    os.unlink(_audit.head_path(path))
    assert _audit.append(path, 'after', run_id=RUN)['quarantined'] == []


@SETTINGS
@given(position=st.integers(0, 10 ** 6), garbage=st.binary(min_size=1, max_size=8))
def test_no_damage_to_a_log_is_ever_extended(tmp_path_factory, position, garbage):
    directory = tmp_path_factory.mktemp('log')
    path = a_log(directory)
    original = read(path)
    position %= len(original)
    data = original[:position] + garbage + original[position + len(garbage):]
    write(path, data)
    result = _audit.append(path, 'after', run_id=RUN)
    verified = _audit.verify(path)
    assert verified['ok'], verified['message']
    # any change to a proven line breaks its digest, the next line's prev or the head
    assert bool(result['quarantined']) == (data != original)
    if result['quarantined']:
        assert read(result['quarantined'][0]) == data


def test_the_run_state_directory_and_lock_listing_ignore_quarantined_copies(tmp_path):
    state_dir = str(tmp_path)
    _state.start(state_dir, RUN)
    write(_state.state_path(state_dir, RUN), b'bad')
    with pytest.raises(_state.StateCorrupt):
        _state.start(state_dir, RUN)
    _state.start(state_dir, 'other')
    assert _state.running_runs(state_dir) == ['other']
    assert json.loads(read(_state.state_path(state_dir, 'other')))['status'] == 'running'


def test_the_head_pins_the_live_file_so_the_next_append_reads_it_in_one_pass(tmp_path):
    path = a_log(tmp_path, lines=3)
    head = json.loads(read(_audit.head_path(path)))
    assert head['bytes'] == len(read(path))
    assert head['file_sha256'] == hashlib.sha256(read(path)).hexdigest()
    # a line edited inside the pinned bytes no longer hashes to the pin: the full check finds it
    write(path, read(path).replace(b'"n":1', b'"n":7'))
    assert _audit.append(path, 'after')['quarantined']
    assert 'line 3' in _audit.records(path)[0]['detail']['reason']
