"""The restore module's documents through ansible-playbook: a restore that would write an invalid document never starts."""

import json
import os

import pytest

from lib import local_playbook, trees

pytestmark = pytest.mark.skipif(not os.access(local_playbook.ANSIBLE_PLAYBOOK, os.X_OK), reason='run scripts/setup.sh first')

BACKUP = local_playbook.module_play('Take the known-good backup', 'Back up the configuration', 'backup', '''
    paths: ["{{ app }}"]
    name: known-good
''', 'backup')
RESTORE = local_playbook.module_play('Roll the configuration back', 'Restore it if its documents are valid', 'restore', '''
    backup: known-good
    documents:
      - path: "{{ app }}/config.yaml"
        required_keys: "{{ keys }}"
''', 'restore', ignore_errors=True)


def run_playbook(tmp_path, text, **extra):
    path = tmp_path / 'play.yml'
    path.write_text(text)
    variables = dict({'app': str(tmp_path / 'app'), 'store': str(tmp_path / 'store'), 'out': str(tmp_path)}, **extra)
    run, counts = local_playbook.run(path, variables)
    assert counts is not None, run.stdout + run.stderr
    return json.loads((tmp_path / (text.split('dest: "{{ out }}/')[1].split('.json')[0] + '.json')).read_text())


def test_restore_refuses_a_backup_whose_document_lacks_a_required_key_then_restores_a_valid_one(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    (app / 'config.yaml').write_text('partyMode:\n  enabled: false\n')
    assert not run_playbook(tmp_path, BACKUP).get('failed')
    (app / 'config.yaml').write_text('partyMode:\n  enabled: true\n')
    before = trees.tree_digest(str(tmp_path / 'app'))

    refused = run_playbook(tmp_path, RESTORE, keys=['partyMode.maxAgents'])

    assert refused['failed'] and refused['changed'] is False
    assert 'config.yaml in backup known-good is invalid: required key partyMode.maxAgents is missing' in refused['msg']
    assert trees.tree_digest(str(tmp_path / 'app')) == before

    restored = run_playbook(tmp_path, RESTORE, keys=['partyMode.enabled'])

    assert not restored.get('failed') and restored['changed'] is True
    assert restored['validated_documents'] == [str(app / 'config.yaml')]
    assert (app / 'config.yaml').read_text() == 'partyMode:\n  enabled: false\n'
