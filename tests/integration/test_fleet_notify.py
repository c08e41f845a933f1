"""The notification (lastgood.rollback.fleet_notify and the notify role over it) in real plays, with a webhook
on 127.0.0.1 that records what is posted to it."""

import json
import os

import pytest

from lib.webhook import Receiver
from lib.fleet_play import ANSIBLE_PLAYBOOK, play

pytestmark = pytest.mark.skipif(not os.access(ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

TOKEN = 's3cr3t-hook-token'
RUN = {'run_id': 'notify-1', 'operation': 'rollback_level3', 'level': 3, 'outcome': 'failed', 'checkpoint': 'run-n1',
       'started': '2026-11-21T23:15:00Z', 'hosts': {'h1': {}, 'h2': {}, 'h3': {}}, 'succeeded_hosts': [],
       'failed_hosts': ['h2'], 'stopped_hosts': ['h1', 'h3'], 'restored_hosts': ['h1', 'h2', 'h3']}
INVENTORY = 'all:\n  hosts: {h1: {}, h2: {}, h3: {}}\n  vars: {ansible_connection: local}\n'
PLAY = '''
- name: Tell people about a run
  hosts: all
  gather_facts: false
  tasks:
    - name: Sum up a run that failed on h2
      ansible.builtin.set_fact:
        lastgood_fleet: "{{ run }}"

    - name: Tell the people who need to know
      lastgood.rollback.fleet_notify:
        dir: "{{ out }}/notes"
        webhook_url: "{{ hook_url }}"
        webhook_token: "{{ token }}"
        webhook_required: "{{ required | default(false) }}"
      run_once: true
      when: not use_role | default(false)

    - name: Tell them through the role
      ansible.builtin.include_role:
        name: lastgood.rollback.notify
      vars:
        notify_run: "{{ run }}"
        notify_status: in_progress
        notify_dir: "{{ out }}/notes"
        notify_webhook_url: "{{ hook_url }}"
        notify_webhook_token: "{{ token }}"
      when: use_role | default(false)

    - name: Save what the hosts see
      ansible.builtin.copy:
        content: "{{ {'result': notify_result, 'message': notify_message} | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
'''


def notify(tmp_path, status=204, **variables):
    with Receiver(status) as hook:
        run, stats = play(tmp_path, PLAY, dict({'run': RUN, 'hook_url': hook.url, 'token': TOKEN}, **variables),
                          inventory=INVENTORY)
    output = run.stdout + run.stderr
    assert TOKEN not in output and hook.url not in output, 'a secret reached the output'
    return run, stats, hook.posts


def test_messages_are_written_posted_with_the_token_and_published(tmp_path):
    run, stats, posts = notify(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = json.loads((tmp_path / 'h3.json').read_text())
    assert seen['result']['webhook'] == {'attempted': True, 'posted': True, 'status': 204}
    assert seen['message']['status'] == 'failed' and seen['message']['severity'] == 'CRITICAL'
    assert len(posts) == 1 and posts[0]['authorization'] == 'Bearer ' + TOKEN
    assert posts[0]['body'] == seen['message']
    internal = (tmp_path / 'notes' / 'notify-failed-internal.txt').read_text()
    assert internal == seen['message']['internal'] + '\n'
    assert 'Hosts: 3 (0 done, 1 failed: h2, 2 stopped by the fleet: h1, h3)' in internal
    assert json.loads((tmp_path / 'notes' / 'notify-failed.json').read_text()) == seen['message']
    assert oct((tmp_path / 'notes' / 'notify-failed-user.txt').stat().st_mode & 0o777) == '0o640'
    assert stats['lastgood_notify'] == {'status': 'failed', 'files': seen['result']['files'], 'webhook_posted': True}


def test_a_webhook_that_refuses_is_a_warning_unless_it_is_required(tmp_path):
    run, dummy, posts = notify(tmp_path, status=500)
    assert run.returncode == 0 and len(posts) == 1
    assert 'did not accept the message (HTTP status 500)' in run.stdout + run.stderr
    assert json.loads((tmp_path / 'h1.json').read_text())['result']['webhook']['posted'] is False

    required, dummy, posts = notify(tmp_path, status=500, required=True)
    assert required.returncode != 0 and 'webhook_required is set' in required.stdout


def test_the_role_is_the_action_with_its_options(tmp_path):
    run, dummy, posts = notify(tmp_path, use_role=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert posts[0]['body']['status'] == 'in_progress'
    assert 'Next update:' in (tmp_path / 'notes' / 'notify-in_progress-internal.txt').read_text()


AWX_PLAY = '''
- name: Tell people about a run, as an AWX job with the webhook credential attached
  hosts: all
  gather_facts: false
  tasks:
    - name: Tell the people who need to know
      ansible.builtin.include_role:
        name: lastgood.rollback.notify
      vars:
        notify_run: "{{ run }}"
        notify_dir: "{{ out }}/notes"

    - name: Save what the hosts see
      ansible.builtin.copy:
        content: "{{ {'result': notify_result} | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0600"
'''


def test_the_webhook_and_token_injected_into_the_environment_are_used_and_never_printed(tmp_path, monkeypatch):
    with Receiver(204) as hook:
        monkeypatch.setenv('LASTGOOD_WEBHOOK_URL', hook.url)
        monkeypatch.setenv('LASTGOOD_WEBHOOK_TOKEN', TOKEN)
        run, dummy = play(tmp_path, AWX_PLAY, {'run': RUN}, '-vvv', inventory=INVENTORY)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(hook.posts) == 1 and hook.posts[0]['authorization'] == 'Bearer ' + TOKEN
    assert hook.posts[0]['body']['run_id'] == RUN['run_id']
    seen = json.loads((tmp_path / 'h1.json').read_text())
    assert seen['result']['webhook'] == {'attempted': True, 'posted': True, 'status': 204}
    output = run.stdout + run.stderr
    assert TOKEN not in output and hook.url not in output, 'a secret reached the output'
    assert TOKEN not in json.dumps(seen) and not any(TOKEN in path.read_text() for path in (tmp_path / 'notes').iterdir())


def test_a_token_in_the_environment_is_not_sent_to_a_webhook_given_as_a_variable(tmp_path, monkeypatch):
    monkeypatch.setenv('LASTGOOD_WEBHOOK_URL', 'http://127.0.0.1:9/credential-endpoint')
    monkeypatch.setenv('LASTGOOD_WEBHOOK_TOKEN', TOKEN)
    run, dummy, posts = notify(tmp_path, token='')
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(posts) == 1 and posts[0]['authorization'] is None
