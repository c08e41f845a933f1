"""The rulebooks with the real ansible-rulebook (Java) against the demo application on this machine.

The level playbooks are stand-ins that record each call (``level1_playbook``/``level2_playbook``, the
rulebooks' own variables), so that what is tested here is the watching, deciding, once-per-incident,
cooldown and audit: exactly one call, or none.  test_automatic_level1_end_to_end runs the real
lastgood.rollback.rollback_level1.
"""

import glob
import http.server
import json
import os
import shutil
import threading
import time
import urllib.request

import pytest
import yaml

from ansible_collections.lastgood.rollback.plugins.module_utils import _audit
from lib.demo_app import free_port
from lib.eda import Rulebook, demo_template, install_demo_app, jsonl, needs_level1, needs_rulebook, wait_for

pytestmark = needs_rulebook


@pytest.fixture(scope='module')
def template(tmp_path_factory):
    return demo_template(tmp_path_factory)


class Site:
    """A demo app, a rulebook watching it, stand-in level playbooks, and what they left behind."""

    def __init__(self, base, template, rulebook='lastgood.rollback.auto_rollback', **variables):
        self.base = base
        self.app, self.url = install_demo_app(template, str(base / 'app'), 'eda')
        self.auto = base / 'auto'
        self.calls_file = str(base / 'calls.jsonl')
        self.host_audit_log = str(base / 'log' / 'audit.jsonl')
        self.rulebook = Rulebook(base, rulebook, {})
        site_vars = base / 'site.yml'
        site_vars.write_text(yaml.safe_dump({'lastgood_audit_log': self.host_audit_log}))
        settings = {
            'lastgood_targets': [{'host': 'localhost', 'metrics_url': self.url + '/metrics',
                                  'health_url': self.url + '/health'}],
            'poll_interval': 0.5, 'poll_max_interval': 2, 'clear_after': 2,
            'lastgood_auto_dir': str(self.auto),
            'site_vars_file': str(site_vars),
            'level1_playbook': self.rulebook.stub_level(1, self.calls_file),
            'level2_playbook': self.rulebook.stub_level(2, self.calls_file),
        }
        settings.update(variables)
        self.rulebook = Rulebook(base, rulebook, settings)

    def calls(self):
        return jsonl(self.calls_file)

    def audit(self, event=None):
        return [record for record in jsonl(str(self.auto / 'audit.jsonl')) if event in (None, record['event'])]

    def stop(self):
        self.rulebook.stop()
        self.app.run('stop')


@pytest.fixture
def site(tmp_path, template):
    made = []

    def make(**variables):
        made.append(Site(tmp_path, template, **variables))
        return made[-1]
    yield make
    for one in made:
        one.stop()


def test_a_crossed_threshold_starts_exactly_one_level1_and_says_why(site):
    demo = site()
    demo.rulebook.start()
    demo.rulebook.wait_output('lastgood: localhost: health')
    demo.app.run('simulate', 'error_rate=25')
    wait_for(demo.calls, 60, 'the automatic Level 1')
    time.sleep(3)
    calls = demo.calls()
    assert len(calls) == 1, calls
    assert calls[0]['level'] == 1 and calls[0]['hosts'] == ['localhost']
    assert calls[0]['reason'] == ('started automatically by error_rate_high (rulebook rule "Roll back automatically '
                                  '(level 1 or 2)") on health_metrics event on localhost (error_rate is 25, > 10)')
    claimed = demo.audit('auto_action_claimed')
    assert len(claimed) == 1 and claimed[0]['run_id'] == calls[0]['run_id']
    detail = claimed[0]['detail']
    assert (detail['rule'], detail['rulebook_rule'], detail['level'], detail['hosts']) == (
        'error_rate_high', 'Roll back automatically (level 1 or 2)', 1, ['localhost'])
    assert detail['event'] == 'health_metrics event on localhost (error_rate is 25, > 10)'
    assert detail['incident'].startswith('localhost-error_rate_high-')
    started = [record for record in jsonl(demo.host_audit_log) if record['event'] == 'auto_rollback_started']
    expected = [(calls[0]['run_id'], calls[0]['reason'])]
    assert [(record['run_id'], record['detail']['message']) for record in started] == expected


def test_a_flapping_metric_starts_no_second_rollback_inside_the_cooldown(site):
    demo = site(error_rate_above=20)
    demo.rulebook.start()
    demo.app.run('simulate', 'error_rate=25')
    wait_for(demo.calls, 60, 'the automatic Level 1')
    demo.app.run('simulate', '--clear')
    demo.rulebook.wait_output('resolved', 30)
    demo.app.run('simulate', 'error_rate=21')
    suppressed = wait_for(lambda: demo.audit('auto_action_suppressed'), 60, 'the second trigger refused')
    assert 'cooldown until' in suppressed[0]['detail']['reason']
    assert suppressed[0]['detail']['incident'] != demo.audit('auto_action_claimed')[0]['detail']['incident']
    assert len(demo.calls()) == 1


def test_a_level2_metric_starts_the_level2_playbook(site):
    demo = site()
    demo.rulebook.start()
    demo.app.run('simulate', 'quality_score=40')
    calls = wait_for(demo.calls, 60, 'the automatic Level 2')
    assert (calls[0]['level'], calls[0]['hosts']) == (2, ['localhost'])
    assert calls[0]['reason'].startswith('started automatically by quality_score_low')


class _Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_level3_condition_notifies_and_asks_for_approval_and_acts_not(site):
    server = http.server.HTTPServer(('127.0.0.1', 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        demo = site(approval_webhook_url='http://127.0.0.1:%d/' % server.server_port)
        demo.rulebook.start()
        demo.app.run('simulate', 'integration_test_failure_rate=60')
        requested = wait_for(lambda: demo.audit('auto_approval_requested'), 60, 'the approval request')
        wait_for(lambda: _Receiver.received, 20, 'the approval request on the webhook')
    finally:
        server.shutdown()
    request = requested[0]['detail']
    assert (request['level'], request['rule'], request['approval_needed_from']) == (
        3, 'integration_test_failure_rate_high', ['engineering_lead'])
    assert 'not started automatically' in request['message']
    assert json.loads((demo.auto / 'approvals' / (request['request'] + '.json')).read_text()) == request
    assert _Receiver.received[-1]['kind'] == 'lastgood_approval_request'
    assert _Receiver.received[-1]['request'] == request['request']
    assert demo.audit('auto_action_claimed')[0]['detail']['action'] == 'approval_request'
    assert demo.calls() == []


def test_a_rulebook_restarted_mid_incident_starts_no_second_rollback(site):
    demo = site()
    demo.rulebook.start()
    demo.app.run('simulate', 'error_rate=25')
    wait_for(demo.calls, 60, 'the automatic Level 1')
    demo.rulebook.stop()
    # The source kept the incident on disk: the restarted rulebook does not announce it again.
    demo.rulebook.start()
    demo.rulebook.wait_output('lastgood: localhost: health')
    time.sleep(2)
    assert 'Decide and claim the automatic action' not in demo.rulebook.output()
    demo.rulebook.stop()
    # Even a source that lost its state (and announces a new incident) starts nothing: the guard refuses.
    shutil.rmtree(str(demo.auto / 'sources'))
    demo.rulebook.start()
    wait_for(lambda: demo.audit('auto_action_suppressed'), 60, 'the repeated trigger refused')
    assert len(demo.calls()) == 1


def test_an_endpoint_that_is_down_or_answers_garbage_is_a_clear_event_and_no_action(site):
    demo = site()
    demo.app.run('simulate', 'error_rate=90', '--garbage')
    demo.rulebook.start()
    demo.rulebook.wait_output('is not a Prometheus sample')
    demo.app.run('stop')
    demo.rulebook.wait_output('does not answer', 30)
    output = demo.rulebook.output()
    assert 'no action taken' in output and 'Traceback' not in output
    assert demo.rulebook.alive()
    assert demo.calls() == [] and demo.audit() == []


def test_pausing_refuses_the_automatic_action_and_says_who_paused(site):
    demo = site()
    demo.auto.mkdir()
    (demo.auto / 'PAUSED').write_text('maintenance window, ask Dana')
    demo.rulebook.start()
    demo.app.run('simulate', 'error_rate=25')
    suppressed = wait_for(lambda: demo.audit('auto_action_suppressed'), 60, 'the paused claim')
    assert 'maintenance window, ask Dana' in suppressed[0]['detail']['reason']
    assert demo.calls() == []


@needs_level1
def test_automatic_level1_end_to_end_turns_the_feature_off_and_the_report_names_the_rule(tmp_path, template):
    app, url = install_demo_app(template, str(tmp_path / 'app'), 'eda')
    rulebook = None
    try:
        app.write('config.yaml', app.read('config.yaml').replace('partyMode:\n  enabled: false',
                                                                 'partyMode:\n  enabled: true'))
        assert app.run('reload').returncode == 0
        app.run('simulate', 'error_rate=25', '--while-enabled', 'partyMode')
        site_vars = tmp_path / 'site.yml'
        site_vars.write_text(yaml.safe_dump({
            'lastgood_app_root': app.root, 'lastgood_backup_root': str(tmp_path / 'store'),
            'lastgood_state_dir': str(tmp_path / 'runs'), 'lastgood_audit_log': str(tmp_path / 'log' / 'audit.jsonl'),
            'lastgood_report_dir': str(tmp_path / 'reports'),
            'lastgood_controller_dir': str(tmp_path / 'controller') + '/{{ lastgood_run_id }}',
        }))
        rulebook = Rulebook(tmp_path, 'lastgood.rollback.auto_rollback', {
            'lastgood_targets': [{'host': 'localhost', 'metrics_url': url + '/metrics', 'health_url': url + '/health'}],
            'poll_interval': 0.5, 'clear_after': 2, 'lastgood_auto_dir': str(tmp_path / 'auto'),
            'site_vars_file': str(site_vars)})
        rulebook.start()
        claimed = wait_for(lambda: jsonl(str(tmp_path / 'auto' / 'audit.jsonl')), 60, 'the claim')[0]
        run_id = claimed['run_id']
        report = wait_for(lambda: glob.glob(str(tmp_path / 'controller' / run_id / 'report.json')), 180,
                          'the Level 1 report')
        rulebook.wait_output('resolved', 60)
        flags = json.loads(app.run('flags').stdout)['flags']
        assert flags['partyMode.enabled'] is False
        assert json.loads(open(report[0]).read())['run']['outcome'] == 'success'
        notifications = ''.join(open(path).read() for path in
                                glob.glob(str(tmp_path / 'controller' / run_id / 'notify-*-internal.txt')))
        assert 'Why: started automatically by error_rate_high' in notifications
        assert 'on health_metrics event on localhost (error_rate is 25, > 10)' in notifications
        postmortem = open(os.path.join(os.path.dirname(report[0]), 'postmortem.md')).read()
        assert 'auto_rollback_started message=started automatically by error_rate_high' in postmortem
        assert [record['event'] for record in jsonl(str(tmp_path / 'auto' / 'audit.jsonl'))] == ['auto_action_claimed']
    finally:
        if rulebook:
            rulebook.stop()
        app.run('stop')


def test_a_sec_pm_004_violation_in_the_audit_log_starts_level1_at_once(site, tmp_path):
    log = str(tmp_path / 'app-audit.jsonl')
    _audit.append(log, 'session_end', detail={'session_id': 's1', 'status': 'success'})
    demo = site(rulebook='lastgood.rollback.audit_breaker', audit_interval=0.3,
                lastgood_audit_logs=[{'host': 'localhost', 'path': log}])
    demo.rulebook.start()
    demo.rulebook.wait_output('lastgood: localhost: session_end')
    _audit.append(log, 'security_violation', level='critical', detail={'code': 'SEC-PM-004', 'session_id': 's2'})
    wait_for(demo.calls, 60, 'the automatic Level 1')
    claimed = demo.audit('auto_action_claimed')
    assert len(claimed) == 1 and claimed[0]['detail']['rule'] == 'sec_pm_004_violation'
    assert claimed[0]['detail']['event'] == \
        'audit_follow event on localhost (condition sec_pm_004_violation is present)'
    assert demo.calls()[0]['level'] == 1


def _post(url, document):
    request = urllib.request.Request(url, data=json.dumps(document).encode('utf-8'),
                                     headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except OSError:
        return None


def test_an_alertmanager_alert_is_decided_and_a_repeated_one_is_the_same_incident(site):
    port = free_port()
    demo = site(rulebook='lastgood.rollback.alertmanager', webhook_host='127.0.0.1', webhook_port=port)
    demo.rulebook.start()
    alert = {'status': 'firing', 'groupKey': '{}:{alertname="CriticalBug"}', 'alerts': [
        {'status': 'firing', 'fingerprint': 'f1',
         'labels': {'alertname': 'CriticalBug', 'host': 'localhost', 'lastgood_condition': 'critical_bug_in_code'}}]}
    url = 'http://127.0.0.1:%d/endpoint' % port
    wait_for(lambda: _post(url, alert), 60, 'the webhook to take the alert')
    requested = wait_for(lambda: demo.audit('auto_approval_requested'), 60, 'the approval request')
    assert (requested[0]['detail']['level'], requested[0]['detail']['rule']) == (3, 'critical_bug_in_code')
    assert _post(url, alert)
    suppressed = wait_for(lambda: demo.audit('auto_action_suppressed'), 60, 'the repeated alert refused')
    assert 'once per incident' in suppressed[0]['detail']['reason']
    assert demo.calls() == []
