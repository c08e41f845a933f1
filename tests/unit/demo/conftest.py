"""An installed demo application for each test (copied from one real install per session)."""

import json
import shutil

import pytest

from lib.demo_app import APPCTL, App, free_port, run_appctl


@pytest.fixture(scope='session')
def installed_template(tmp_path_factory):
    """One real install per session; building the git history is the slow part."""
    root = tmp_path_factory.mktemp('template') / 'app'
    result = run_appctl(APPCTL, 'install', str(root), '--bind', '127.0.0.1', '--port', '1', '--host-name', 'unit')
    assert result.returncode == 0, result.stderr
    return str(root)


@pytest.fixture
def app(tmp_path, installed_template):
    """A freshly installed app (not started) that listens on a free port of 127.0.0.1 when started."""
    root = tmp_path / 'app'
    shutil.copytree(installed_template, str(root), symlinks=True)
    installed = App(root)
    settings = json.loads(installed.read('settings.json'))
    settings['port'] = free_port()
    installed.write('settings.json', json.dumps(settings))
    yield installed
    installed.run('stop')
