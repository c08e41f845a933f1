"""GET /metrics: the application's numbers in the Prometheus text format.

The numbers are simulated: a quiet baseline, changed by ``simulate.json`` below the
root (written by ``appctl simulate``), which is read on every request:

  {"values": {"error_rate": 25}, "while_enabled": "partyMode"}   25 % errors while Party Mode is on
  {"garbage": true}                                               answer with something that is not metrics

With ``while_enabled`` the simulated values hold only while that feature is enabled in
what the server has loaded, so turning the feature off (rollback level 1) brings the
baseline back: the story of a feature that breaks requests.
"""

import json
import os

from . import layout

SIMULATION = 'simulate.json'

# metric -> (Prometheus name, help, baseline)
METRICS = {
    'error_rate': ('app_error_rate_percent', 'Share of requests that failed over the last minute, percent.', 0.5),
    'session_success_rate': ('app_session_success_rate_percent', 'Share of sessions that ended well, percent.', 99),
    'quality_score': ('app_quality_score', 'Answer quality score, 0-100.', 92),
    'resource_usage': ('app_resource_usage_percent', 'CPU and memory use, percent of the limit.', 35),
    'integration_test_failure_rate': ('app_integration_test_failure_rate_percent',
                                      'Share of the integration tests failing against this host, percent.', 0),
    'latency_seconds': ('app_request_latency_seconds', 'Median request latency over the last minute.', 0.08),
    'security_violations': ('app_security_violations', 'Security violations (SEC-PM-*) in the last hour.', 0),
}


def read_simulation(root):
    try:
        with open(layout.path(root, SIMULATION)) as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def write_simulation(root, document):
    path = layout.path(root, SIMULATION)
    with open(path + '.tmp', 'w') as handle:
        json.dump(document, handle, sort_keys=True)
    os.replace(path + '.tmp', path)


def values(simulation, flags):
    """The metric values now: the baseline, with the simulation's values where they apply."""
    current = dict((name, spec[2]) for name, spec in METRICS.items())
    feature = simulation.get('while_enabled')
    if not feature or flags.get(feature + '.enabled'):
        current.update((name, value) for name, value in (simulation.get('values') or {}).items() if name in METRICS)
    return current


def render(snap, simulation):
    """(content type, body) of /metrics for the loaded snapshot."""
    if simulation.get('garbage'):
        return 'text/html', '<html><body><h1>502 Bad Gateway</h1></body></html>\n'
    host = snap.settings.get('hostName') or ''
    lines = []
    for name, number in sorted(values(simulation, snap.flags).items()):
        metric, text, _baseline = METRICS[name]
        lines += ['# HELP %s %s' % (metric, text), '# TYPE %s gauge' % metric,
                  '%s{host="%s"} %s' % (metric, host, number)]
    lines += ['# HELP app_healthy 1 when /health answers 200.', '# TYPE app_healthy gauge',
              'app_healthy{host="%s"} %d' % (host, 1 if snap.healthy else 0),
              '# HELP app_feature_enabled 1 when the feature is enabled.', '# TYPE app_feature_enabled gauge']
    for flag, enabled in sorted(snap.flags.items()):
        if flag.endswith('.enabled'):
            feature = flag[:-len('.enabled')]
            lines.append('app_feature_enabled{host="%s",feature="%s"} %d' % (host, feature, 1 if enabled else 0))
    return 'text/plain; version=0.0.4', '\n'.join(lines) + '\n'
