"""Write docs/modules.md, the module reference, from ``ansible-doc --json``.

Every module in plugins/modules is documented, so what the page says is what
``ansible-doc lastgood.rollback.<module>`` says.  Run it after changing a
module's DOCUMENTATION, EXAMPLES or RETURN:

    .venv/bin/python scripts/gen_module_docs.py          # rewrite docs/modules.md
    .venv/bin/python scripts/gen_module_docs.py --check  # exit 1 if docs/modules.md is stale

The unit test tests/unit/test_module_docs.py runs the --check form.
"""

import json
import os
import re
import sys

from reference_page import COLLECTION, ROOT, ansible_doc, write_or_check

OUTPUT = os.path.join(ROOT, 'docs', 'modules.md')
MACROS = ('RV', 'C', 'O', 'V', 'M', 'P', 'E', 'I', 'B', 'U', 'L')
_MACRO_RE = re.compile(r'\b(%s)\(' % '|'.join(MACROS))


def module_names():
    directory = os.path.join(ROOT, 'plugins', 'modules')
    return sorted(name[:-3] for name in os.listdir(directory) if name.endswith('.py') and not name.startswith('_'))


def markup(text):
    """Ansible doc markup (C(), O(), V(), RV(), M(), I(), B(), U(), L()) to Markdown."""
    out = []
    position = 0
    for match in _MACRO_RE.finditer(text):
        if match.start() < position:
            continue
        end = _closing(text, match.end())
        if end is None:
            continue
        out.append(text[position:match.start()])
        out.append(_render(match.group(1), text[match.end():end]))
        position = end + 1
    out.append(text[position:])
    return ''.join(out)


def _closing(text, start):
    depth = 0
    for index in range(start, len(text)):
        if text[index] == '(':
            depth += 1
        elif text[index] == ')':
            if depth == 0:
                return index
            depth -= 1
    return None


def _render(macro, argument):
    if macro == 'I':
        return '*%s*' % argument
    if macro == 'B':
        return '**%s**' % argument
    if macro == 'U':
        return '<%s>' % argument
    if macro == 'L':
        label, url = argument.split(',', 1) if ',' in argument else (argument, argument)
        return '[%s](%s)' % (label.strip(), url.strip())
    if macro == 'M':
        return '[`%s`](#%s)' % (argument, anchor(argument))
    return '`%s`' % argument


def anchor(fqcn):
    """The anchor GitHub gives the heading ``## <fqcn>`` (punctuation other than - and _ dropped)."""
    return fqcn.replace('.', '').lower()


def paragraphs(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def type_of(spec):
    kind = spec.get('type', 'str')
    if kind == 'list' and spec.get('elements'):
        return 'list of %s' % spec['elements']
    return kind


def literal(value):
    return '`%s`' % json.dumps(value) if not isinstance(value, str) else '`%s`' % value


def option_lines(options, indent=''):
    lines = []
    for name in sorted(options):
        spec = options[name]
        facts = [type_of(spec)]
        if spec.get('required'):
            facts.append('required')
        if 'default' in spec and spec['default'] is not None:
            facts.append('default %s' % literal(spec['default']))
        if spec.get('choices'):
            facts.append('choices: %s' % ', '.join(literal(choice) for choice in spec['choices']))
        if spec.get('aliases'):
            facts.append('aliases: %s' % ', '.join('`%s`' % alias for alias in spec['aliases']))
        lines.append('%s- **`%s`** (%s)' % (indent, name, '; '.join(facts)))
        for text in paragraphs(spec.get('description')):
            lines.append('%s  %s' % (indent, markup(text)))
        if spec.get('suboptions'):
            lines.extend(option_lines(spec['suboptions'], indent + '  '))
    return lines


def return_lines(values, indent=''):
    lines = []
    for name in sorted(values):
        spec = values[name]
        facts = [type_of(spec)]
        if spec.get('returned'):
            facts.append('returned: %s' % markup(spec['returned']))
        lines.append('%s- **`%s`** (%s)' % (indent, name, '; '.join(facts)))
        for text in paragraphs(spec.get('description')):
            lines.append('%s  %s' % (indent, markup(text)))
        if 'sample' in spec:
            lines.append('%s  Sample: `%s`' % (indent, json.dumps(spec['sample'], sort_keys=True)))
        if spec.get('contains'):
            lines.extend(return_lines(spec['contains'], indent + '  '))
    return lines


def module_section(fqcn, data):
    doc = data['doc']
    lines = ['## %s' % fqcn, '', '*%s*' % markup(doc['short_description']), '']
    for text in paragraphs(doc.get('description')):
        lines.extend([markup(text), ''])
    if doc.get('requirements'):
        lines.extend(['**Requirements:** %s' % ', '.join(doc['requirements']), ''])
    lines.extend(['### Options', ''])
    lines.extend(option_lines(doc.get('options') or {}) or ['None.'])
    lines.extend(['', '### Attributes', '', '| Attribute | Support | Details |', '|---|---|---|'])
    for name in sorted(doc.get('attributes') or {}):
        spec = doc['attributes'][name]
        details = ' '.join(markup(text) for text in paragraphs(spec.get('details') or spec.get('description')))
        lines.append('| %s | %s | %s |' % (name, spec.get('support', ''), details.replace('|', '\\|')))
    lines.extend(['', '### Examples', '', '```yaml', (data.get('examples') or '').strip(), '```', ''])
    lines.extend(['### Return values', ''])
    lines.extend(return_lines(data.get('return') or {}) or ['None.'])
    seealso = [item['module'] for item in doc.get('seealso') or [] if 'module' in item]
    if seealso:
        lines.extend(['', 'See also: %s' % ', '.join('[`%s`](#%s)' % (name, anchor(name)) for name in seealso)])
    lines.append('')
    return lines


def render(data, names):
    fqcns = ['%s.%s' % (COLLECTION, name) for name in names]
    lines = [
        '# Module reference',
        '',
        '<!-- Generated by scripts/gen_module_docs.py from ansible-doc --json; do not edit by hand. -->',
        '',
        'Every module of `%s`, as `ansible-doc` documents it.  Options shared by the store modules' % COLLECTION,
        '(`backup_root`, `set`) are described once in the `lastgood.rollback.attributes.store` fragment and',
        'repeated here for each module.  All modules belong to the action group',
        '`group/lastgood.rollback.all`, so `module_defaults` can set them once per play.',
        '',
    ]
    lines.extend('- [`%s`](#%s) - %s' % (fqcn, anchor(fqcn), markup(data[fqcn]['doc']['short_description']))
                 for fqcn in fqcns)
    lines.append('')
    for fqcn in fqcns:
        lines.extend(module_section(fqcn, data[fqcn]))
    return '\n'.join(lines).rstrip('\n') + '\n'


def generate():
    names = module_names()
    return render(ansible_doc('module', names), names)


def main():
    return write_or_check(__doc__.splitlines()[0], __file__, OUTPUT, 'ansible-doc', generate,
                          lambda: '%d modules' % len(module_names()))


if __name__ == '__main__':
    sys.exit(main())
