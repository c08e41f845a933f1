"""The demo app's fallback YAML reader agrees with PyYAML on what it accepts and refuses the rest."""

import os

import pytest
import yaml

from lib import demo_app
from demoapp import yamlsubset
from demoapp.yamlsubset import YAMLSubsetError

SEED_CONFIG = os.path.join(demo_app.APP_SOURCE, 'seed', 'config.yaml')

AGREES = [
    'a: 1\nb: two\nc: 3.5\nd: ~\ne:\n',
    'flags:\n  on: yes\n  off: No\n  t: TRUE\n',
    'nested:\n  deeper:\n    deepest: "quoted # not a comment"\n',
    'list:\n  - a\n  - 2\n  - false\n',
    'list:\n- same indent as key\n- second\n',
    'items:\n  - name: one\n    size: 1\n  - name: two\n    size: 2\n',
    "single: 'it''s'\ndouble: \"tab\\tand \\u00e9\"\n",
    'flow: [a, 1, true]\nempty_list: []\nempty_map: {}\n',
    '---\n# comment\nkey: value  # trailing comment\n',
    'url: http://example.invalid:8080/path\n',
    'neg: -3\nunder: 1_000\n',
]


@pytest.mark.parametrize('text', AGREES)
def test_subset_reads_what_pyyaml_reads(text):
    assert yamlsubset.loads(text) == yaml.safe_load(text)


def test_subset_reads_the_seed_config_like_pyyaml():
    with open(SEED_CONFIG) as handle:
        text = handle.read()
    assert yamlsubset.loads(text) == yaml.safe_load(text)


@pytest.mark.parametrize('text', [
    'a: &anchor 1\nb: *anchor\n',
    'a: !!str 1\n',
    'a: |\n  block\n',
    'a: 1\n---\nb: 2\n',
    'a: [unclosed\n',
    'a: 1\n  b: 2\n',
    'a:\n\tb: 1\n',
    'a: 1\na: 2\n',
    'just a line\n',
    'a: b: c\n',
    'a: [1, [2]]\n',
])
def test_subset_refuses_what_it_does_not_support(text):
    with pytest.raises(YAMLSubsetError):
        yamlsubset.loads(text)


def test_subset_errors_name_the_line():
    with pytest.raises(YAMLSubsetError, match='line 3'):
        yamlsubset.loads('a: 1\nb: 2\nc: *ref\n')
