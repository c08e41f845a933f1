import hashlib
import json
import multiprocessing
import os

import pytest

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit, _fsatomic
from lib import faults


def _log(tmp_path, count, **kwargs):
    path = str(tmp_path / 'audit.jsonl')
    for index in range(count):
        _audit.append(path, 'event_%d' % index, run_id='r1', detail={'index': index}, **kwargs)
    return path


def _raw_lines(path):
    with open(path, 'rb') as handle:
        return handle.read().splitlines(keepends=True)


def _write_lines(path, lines):
    with open(path, 'wb') as handle:
        handle.write(b''.join(lines))


def _files(directory):
    """``{name: bytes}`` of the files in ``directory`` (the log, its rotations and its head)."""
    return {name: open(os.path.join(directory, name), 'rb').read() for name in os.listdir(directory)}


def _put_back(directory, files):
    """Make ``directory`` hold exactly ``files`` (from ``_files``) again."""
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    for name, data in files.items():
        with open(os.path.join(directory, name), 'wb') as handle:
            handle.write(data)


def test_each_line_carries_the_sha256_of_the_previous_line_and_the_first_the_genesis(tmp_path):
    path = _log(tmp_path, 4)
    lines = _raw_lines(path)
    prevs = [json.loads(line)['prev'] for line in lines]
    assert prevs[0] == _audit.GENESIS == '0' * 64
    for before, prev in zip(lines, prevs[1:]):
        assert prev == hashlib.sha256(before).hexdigest()
    assert _audit.verify(path)['ok'] is True


def test_appended_record_has_utc_time_host_user_level_event_and_detail(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    result = _audit.append(path, 'rollback_start', run_id='r9', level='warning', detail={'level': 2}, user='alice')
    record = json.loads(_raw_lines(path)[0])
    assert record['ts'].endswith('Z') and abs(_audit.parse_ts(record['ts']) - _audit.parse_ts(_audit.utc_now())) < 3600
    assert {key: record[key] for key in ('run_id', 'level', 'event', 'detail', 'user')} == {
        'run_id': 'r9', 'level': 'warning', 'event': 'rollback_start', 'detail': {'level': 2}, 'user': 'alice'}
    assert record['host']
    assert result['sha256'] == hashlib.sha256(_raw_lines(path)[0]).hexdigest()


@pytest.mark.parametrize('index', range(6))
def test_verify_detects_an_edit_of_any_line(tmp_path, index):
    path = _log(tmp_path, 6)
    lines = _raw_lines(path)
    lines[index] = lines[index].replace(b'event_%d' % index, b'event_X')
    _write_lines(path, lines)
    result = _audit.verify(path)
    assert result['ok'] is False
    broken = result['first_broken']
    if index < 5:
        assert (broken['line'], broken['number']) == (index + 2, index + 2)
        assert 'edited' in broken['reason']
    else:
        assert 'no longer in the log' in broken['reason']


@pytest.mark.parametrize('index', range(6))
def test_verify_detects_the_deletion_of_any_line(tmp_path, index):
    path = _log(tmp_path, 6)
    lines = _raw_lines(path)
    del lines[index]
    _write_lines(path, lines)
    result = _audit.verify(path)
    assert result['ok'] is False
    if index == 0:
        assert 'genesis' in result['first_broken']['reason']
    elif index < 5:
        assert result['first_broken']['line'] == index + 1
    else:
        assert 'removed from the end' in result['message']


def test_verify_detects_a_forged_line_inserted_in_the_middle(tmp_path):
    path = _log(tmp_path, 4)
    lines = _raw_lines(path)
    forged = dict(json.loads(lines[1]), event='forged')
    forged['prev'] = hashlib.sha256(lines[1]).hexdigest()
    lines.insert(2, (json.dumps(forged) + '\n').encode())
    _write_lines(path, lines)
    result = _audit.verify(path)
    assert result['ok'] is False and result['first_broken']['line'] == 4


def test_verify_detects_a_log_truncated_to_nothing(tmp_path):
    path = _log(tmp_path, 3)
    _write_lines(path, [])
    assert _audit.verify(path)['ok'] is False


def test_verify_fails_when_the_head_file_is_missing(tmp_path):
    path = _log(tmp_path, 3)
    os.unlink(path + '.head')
    result = _audit.verify(path)
    assert result['ok'] is False and 'head file' in result['message']


def test_verify_of_a_log_that_does_not_exist_is_ok_and_empty(tmp_path):
    result = _audit.verify(str(tmp_path / 'none.jsonl'))
    assert (result['ok'], result['lines'], result['files']) == (True, 0, [])


def test_rotation_chains_the_new_file_to_the_last_line_of_the_rotated_one(tmp_path):
    path = _log(tmp_path, 12, rotate_bytes=700)
    rotated = _audit.rotated_files(path)
    assert len(rotated) >= 3
    assert [number for number, _name in rotated] == list(range(1, len(rotated) + 1))
    for (_n, older), newer in zip(rotated, [name for _n, name in rotated[1:]] + [path]):
        assert json.loads(_raw_lines(newer)[0])['prev'] == hashlib.sha256(_raw_lines(older)[-1]).hexdigest()
    result = _audit.verify(path)
    assert result['ok'] is True and result['lines'] == 12 and len(result['files']) == len(rotated) + 1
    assert [r['event'] for r in _audit.records(path)] == ['event_%d' % i for i in range(12)]


@pytest.mark.parametrize('which', ['oldest', 'middle', 'newest'])
def test_verify_detects_a_missing_rotated_file(tmp_path, which):
    path = _log(tmp_path, 12, rotate_bytes=700)
    rotated = [name for _n, name in _audit.rotated_files(path)]
    os.unlink({'oldest': rotated[0], 'middle': rotated[1], 'newest': rotated[-1]}[which])
    assert _audit.verify(path)['ok'] is False


def test_verify_detects_an_edit_inside_a_rotated_file(tmp_path):
    path = _log(tmp_path, 12, rotate_bytes=700)
    first = _audit.rotated_files(path)[0][1]
    lines = _raw_lines(first)
    lines[0] = lines[0].replace(b'"r1"', b'"r2"')
    _write_lines(first, lines)
    result = _audit.verify(path)
    assert result['ok'] is False and result['first_broken']['file'] == first


def _append_many(path, worker, count, rotate_bytes):
    for index in range(count):
        _audit.append(path, 'concurrent', run_id='w%d' % worker, detail={'worker': worker, 'index': index},
                      rotate_bytes=rotate_bytes)


def test_concurrent_appenders_in_several_processes_lose_no_line_and_keep_the_chain(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    workers, count = 6, 40
    context = multiprocessing.get_context('fork')
    procs = [context.Process(target=_append_many, args=(path, worker, count, 6000)) for worker in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    assert [proc.exitcode for proc in procs] == [0] * workers
    result = _audit.verify(path)
    assert result['ok'] is True, result['message']
    assert result['lines'] == workers * count and result['unanchored_lines'] == 0
    assert len(result['files']) > 1
    seen = sorted((r['detail']['worker'], r['detail']['index']) for r in _audit.records(path))
    assert seen == [(w, i) for w in range(workers) for i in range(count)]


def test_a_torn_tail_left_by_a_crashed_append_is_reported_then_cut_by_the_next_append(tmp_path):
    path = _log(tmp_path, 2)
    with open(path, 'ab') as handle:
        handle.write(b'{"ts": "2026-')
    result = _audit.verify(path)
    assert result['ok'] is True and result['torn_tail_bytes'] == 13
    appended = _audit.append(path, 'after_crash')
    assert appended['repaired_bytes'] == 13
    result = _audit.verify(path)
    assert result['ok'] is True and result['lines'] == 3 and result['torn_tail_bytes'] == 0


def test_a_failed_head_update_keeps_the_event_and_leaves_it_unanchored(tmp_path):
    path = _log(tmp_path, 2)
    head = path + _audit.HEAD_SUFFIX
    plan = faults.FaultPlan(fail_at=1, only={'replace'})
    with faults.inject([_fsatomic], plan):
        result = _audit.append(path, 'late')
    assert result['head_updated'] is False and 'head file' in result['warning']
    verified = _audit.verify(path)
    assert verified['ok'] is True and verified['unanchored_lines'] == 1
    assert os.path.exists(head)


def test_append_leaves_the_chain_valid_and_the_event_all_or_nothing_at_every_fault(tmp_path):
    path = _log(tmp_path, 3)
    snapshot = _files(tmp_path)

    def check(k, plan, error):
        result = _audit.verify(path)
        assert result['ok'] is True, 'fault %d (%s): %s' % (k, plan.fired_call, result['message'])
        events = [r['event'] for r in _audit.records(path)]
        if error is None:
            assert events == ['event_0', 'event_1', 'event_2', 'new'], 'fault %d' % k
        else:
            assert events == ['event_0', 'event_1', 'event_2'], 'fault %d (%s) recorded the event' % (k, plan.fired_call)
        assert not [name for name in os.listdir(tmp_path) if name.startswith(_fsatomic.TMP_PREFIX)]
        _put_back(tmp_path, snapshot)

    points = faults.sweep([_audit, _fsatomic], lambda: _audit.append(path, 'new'), check)
    assert points >= 8


def test_rotation_leaves_the_chain_valid_at_every_fault(tmp_path):
    path = _log(tmp_path, 3)
    snapshot = _files(tmp_path)

    def check(k, plan, error):
        result = _audit.verify(path)
        assert result['ok'] is True, 'fault %d (%s): %s' % (k, plan.fired_call, result['message'])
        events = [r['event'] for r in _audit.records(path)]
        assert events[:3] == ['event_0', 'event_1', 'event_2'] and events[3:] == ([] if error else ['new'])
        _put_back(tmp_path, snapshot)

    points = faults.sweep([_audit, _fsatomic], lambda: _audit.append(path, 'new', rotate_bytes=300), check)
    assert points >= 10


def test_query_filters_by_run_id_event_level_and_time_window(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    _audit.append(path, 'a', run_id='r1', ts='2026-01-01T10:00:00.000000Z')
    _audit.append(path, 'b', run_id='r2', level='error', ts='2026-01-01T11:00:00.000000Z')
    _audit.append(path, 'a', run_id='r2', ts='2026-01-01T12:00:00.000000Z')

    def events(**filters):
        return [(r['event'], r['run_id']) for r in _audit.query(path, **filters)]
    assert events(run_id='r2') == [('b', 'r2'), ('a', 'r2')]
    assert events(events=['a']) == [('a', 'r1'), ('a', 'r2')]
    assert events(levels=['error']) == [('b', 'r2')]
    assert events(since=_audit.parse_ts('2026-01-01T11:00:00Z')) == [('b', 'r2'), ('a', 'r2')]
    assert events(since=_audit.parse_ts('2026-01-01T10:30:00Z'),
                  until=_audit.parse_ts('2026-01-01T12:00:00+01:00')) == [('b', 'r2')]


def test_active_sessions_are_started_sessions_without_an_end(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    for event, sid in [('session_start', 's1'), ('session_start', 's2'), ('session_end', 's1'),
                       ('session_start', 's3'), ('heartbeat', 's3')]:
        _audit.append(path, event, run_id='r1', detail={'session_id': sid})
    _audit.append(path, 'session_start', detail={})
    assert [s['session_id'] for s in _audit.active_sessions(path)] == ['s2', 's3']


@pytest.mark.parametrize('text, expected', [
    ('2026-01-01T00:00:00Z', 1767225600.0),
    ('2026-01-01T00:00:00', 1767225600.0),
    ('2026-01-01T01:00:00+01:00', 1767225600.0),
    ('2026-01-01 00:00:00.5Z', 1767225600.5),
    ('2025-12-31T23:00:00-0100', 1767225600.0),
])
def test_parse_ts_reads_iso_8601_in_utc_or_with_an_offset(text, expected):
    assert _audit.parse_ts(text) == expected


def test_an_oversized_or_malformed_event_is_refused_before_anything_is_written(tmp_path):
    path = str(tmp_path / 'audit.jsonl')
    with pytest.raises(_audit.AuditError, match='limit'):
        _audit.append(path, 'big', detail={'blob': 'x' * _audit.MAX_LINE_BYTES})
    with pytest.raises(_audit.AuditError, match='level'):
        _audit.append(path, 'x', level='loud')
    assert not os.path.exists(path)
