import json
import os

from ansible_collections.lastgood.rollback.plugins.module_utils import _trigger_guard

HOUR = 3600


def _claim(tmp_path, incident, now, cooldown=1800, **kwargs):
    return _trigger_guard.claim(str(tmp_path / 'guard.json'), 'level1:web1', incident, cooldown,
                                record={'rule': 'error_rate_high'}, now=now, **kwargs)


def test_the_first_claim_for_an_incident_is_granted_with_a_run_id_and_kept_on_disk(tmp_path):
    result = _claim(tmp_path, 'inc-a', now=HOUR)
    assert result['claimed'] and result['run_id'].startswith('19700101T010000Z-')
    kept = json.loads((tmp_path / 'guard.json').read_text())['keys']['level1:web1']
    assert (kept['incident'], kept['run_id'], kept['rule']) == ('inc-a', result['run_id'], 'error_rate_high')


def test_the_same_incident_is_refused_even_after_the_cooldown(tmp_path):
    first = _claim(tmp_path, 'inc-a', now=HOUR)
    again = _claim(tmp_path, 'inc-a', now=100 * HOUR)
    assert not again['claimed'] and 'once per incident' in again['reason'] and first['run_id'] in again['reason']


def test_a_new_incident_inside_the_cooldown_is_refused_and_granted_after_it(tmp_path):
    _claim(tmp_path, 'inc-a', now=HOUR)
    flapped = _claim(tmp_path, 'inc-b', now=HOUR + 600)
    assert not flapped['claimed'] and 'cooldown until 1970-01-01T01:30:00' in flapped['reason']
    assert _claim(tmp_path, 'inc-c', now=HOUR + 1801)['claimed']


def test_keys_are_independent(tmp_path):
    _claim(tmp_path, 'inc-a', now=HOUR)
    other = _trigger_guard.claim(str(tmp_path / 'guard.json'), 'level1:web2', 'inc-x', 1800, now=HOUR + 1)
    assert other['claimed']


def test_the_pause_file_refuses_every_claim_and_is_quoted(tmp_path):
    pause = tmp_path / 'PAUSED'
    pause.write_text('change freeze, ask Dana\n')
    result = _claim(tmp_path, 'inc-a', now=HOUR, pause_file=str(pause))
    assert not result['claimed'] and result['paused'] and 'change freeze, ask Dana' in result['reason']
    os.unlink(str(pause))
    assert _claim(tmp_path, 'inc-a', now=HOUR, pause_file=str(pause))['claimed']


def test_check_mode_says_what_would_happen_and_writes_nothing(tmp_path):
    assert _claim(tmp_path, 'inc-a', now=HOUR, check=True)['claimed']
    assert not os.path.exists(str(tmp_path / 'guard.json'))
    assert _claim(tmp_path, 'inc-a', now=HOUR)['claimed']
