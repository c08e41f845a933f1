"""A small YAML reader for the demo application when PyYAML is not installed.

It reads the subset the demo's config.yaml uses and refuses everything else
loudly, so a file it cannot read counts as invalid rather than misread:

- block mappings (``key: value``, ``key:`` + an indented block) and block
  sequences (``- item``, ``- key: value``), indented with spaces;
- plain, single- and double-quoted scalars; null/~, YAML 1.1 booleans
  (true/false/yes/no/on/off), integers, floats;
- flow collections of scalars on one line (``[a, b]``, ``{}``);
- comments and a leading ``---``.

Anchors, aliases, tags, block scalars (``|``, ``>``) and multiple documents
are refused.  This is a fixture's parser, not a general one: the collection
itself never uses it.
"""

import json
import re

_INT = re.compile(r'^[-+]?(0|[1-9][0-9_]*)$')
_FLOAT = re.compile(r'^[-+]?([0-9][0-9_]*)?\.[0-9]+([eE][-+]?[0-9]+)?$')
_BOOLS = {
    'true': True, 'yes': True, 'on': True,
    'false': False, 'no': False, 'off': False,
}
_NULLS = ('', '~', 'null', 'Null', 'NULL')
_UNSUPPORTED_START = '&*!|>%@`'


class YAMLSubsetError(ValueError):
    """The text is not YAML this reader understands; ``line`` is 1-based."""

    def __init__(self, message, line=None):
        ValueError.__init__(self, message if line is None else 'line %d: %s' % (line, message))
        self.line = line


class _Line:
    __slots__ = ('indent', 'text', 'number')

    def __init__(self, indent, text, number):
        self.indent = indent
        self.text = text
        self.number = number


def loads(text):
    """Parse ``text`` and return the document (dict, list, scalar or None)."""
    lines = _significant_lines(text)
    if not lines:
        return None
    value, index = _block(lines, 0, lines[0].indent)
    if index != len(lines):
        raise YAMLSubsetError('unexpected content (check the indentation)', lines[index].number)
    return value


def _significant_lines(text):
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if '\t' in raw[:len(raw) - len(raw.lstrip())]:
            raise YAMLSubsetError('tab in indentation', number)
        content = _strip_comment(raw).rstrip()
        if not content.strip():
            continue
        if content.strip() == '---' and not lines:
            continue
        if content.strip() in ('---', '...'):
            raise YAMLSubsetError('multiple documents are not supported', number)
        lines.append(_Line(len(content) - len(content.lstrip(' ')), content.strip(), number))
    return lines


def _strip_comment(raw):
    quote = None
    for position, char in enumerate(raw):
        if quote:
            if char == quote:
                quote = None
        elif char in '"\'' and (position == 0 or raw[position - 1] in ' :-[{,'):
            quote = char
        elif char == '#' and (position == 0 or raw[position - 1] == ' '):
            return raw[:position]
    return raw


def _is_item(text):
    return text == '-' or text.startswith('- ')


def _block(lines, index, indent):
    if _is_item(lines[index].text):
        return _sequence(lines, index, indent)
    return _mapping(lines, index, indent)


def _mapping(lines, index, indent):
    result = {}
    while index < len(lines) and lines[index].indent == indent:
        line = lines[index]
        if _is_item(line.text):
            raise YAMLSubsetError('a list item where a "key: value" was expected', line.number)
        key, rest = _split_key(line)
        if key in result:
            raise YAMLSubsetError('duplicate key %r' % key, line.number)
        index += 1
        if rest:
            result[key] = _scalar(rest, line.number)
        elif index < len(lines) and lines[index].indent > indent:
            result[key], index = _block(lines, index, lines[index].indent)
        elif index < len(lines) and lines[index].indent == indent and _is_item(lines[index].text):
            result[key], index = _sequence(lines, index, indent)
        else:
            result[key] = None
    if index < len(lines) and lines[index].indent > indent:
        raise YAMLSubsetError('unexpected indentation', lines[index].number)
    return result, index


def _sequence(lines, index, indent):
    items = []
    while index < len(lines) and lines[index].indent == indent and _is_item(lines[index].text):
        line = lines[index]
        rest = line.text[1:].lstrip(' ')
        if not rest:
            index += 1
            if index < len(lines) and lines[index].indent > indent:
                value, index = _block(lines, index, lines[index].indent)
            else:
                value = None
        elif _looks_like_key(rest):
            # "- key: value" opens a mapping whose keys line up with "key".
            inner = indent + (len(line.text) - len(rest))
            lines = lines[:index] + [_Line(inner, rest, line.number)] + lines[index + 1:]
            value, index = _mapping(lines, index, inner)
        else:
            value = _scalar(rest, line.number)
            index += 1
        items.append(value)
    return items, index


def _looks_like_key(text):
    if text[0] in '"\'':
        end = text.find(text[0], 1)
        return end > 0 and text[end + 1:end + 2] == ':'
    if text[0] in '[{':
        return False
    return bool(re.search(r':( |$)', text))


def _split_key(line):
    text = line.text
    if text[0] in '"\'':
        end = text.find(text[0], 1)
        if end < 0 or text[end + 1:end + 2] != ':':
            raise YAMLSubsetError('expected "key: value"', line.number)
        key = _scalar(text[:end + 1], line.number)
        rest = text[end + 2:]
    else:
        match = re.search(r':( |$)', text)
        if not match:
            raise YAMLSubsetError('expected "key: value", got %r' % text, line.number)
        raw_key = text[:match.start()].rstrip()
        rest = text[match.end():]
        if not raw_key or raw_key[0] in _UNSUPPORTED_START + '[{':
            raise YAMLSubsetError('unsupported key %r' % raw_key, line.number)
        # Plain keys resolve like values, as in PyYAML: "on:" is the boolean True.
        key = _scalar(raw_key, line.number)
    if rest and not rest.startswith(' ') and text[0] in '"\'':
        raise YAMLSubsetError('expected a space after ":"', line.number)
    return key, rest.strip()


def _scalar(text, number):
    text = text.strip()
    if text in _NULLS:
        return None
    first = text[0]
    if first in _UNSUPPORTED_START:
        raise YAMLSubsetError('unsupported YAML construct %r (anchors, aliases, tags and block scalars '
                              'need PyYAML)' % text, number)
    if first == '"':
        if len(text) < 2 or not text.endswith('"'):
            raise YAMLSubsetError('unterminated double-quoted string', number)
        try:
            return json.loads(text)
        except ValueError:
            raise YAMLSubsetError('invalid double-quoted string %s' % text, number)
    if first == "'":
        if len(text) < 2 or not text.endswith("'"):
            raise YAMLSubsetError('unterminated single-quoted string', number)
        return text[1:-1].replace("''", "'")
    if first in '[{':
        return _flow(text, number)
    if text.lower() in _BOOLS and text in (text.lower(), text.capitalize(), text.upper()):
        return _BOOLS[text.lower()]
    if _INT.match(text):
        return int(text.replace('_', ''))
    if _FLOAT.match(text):
        return float(text.replace('_', ''))
    if re.search(r': |:$| #', text) or first in ']},':
        raise YAMLSubsetError('%r is not a valid plain scalar' % text, number)
    return text


def _flow(text, number):
    closing = {'[': ']', '{': '}'}[text[0]]
    if not text.endswith(closing):
        raise YAMLSubsetError('unterminated flow collection %r' % text, number)
    inner = text[1:-1].strip()
    if any(char in inner for char in '[]{}'):
        raise YAMLSubsetError('nested flow collections are not supported', number)
    parts = [part.strip() for part in inner.split(',')] if inner else []
    if parts and not parts[-1]:
        parts.pop()
    if closing == ']':
        return [_scalar(part, number) for part in parts]
    result = {}
    for part in parts:
        key, sep, value = part.partition(':')
        if not sep:
            raise YAMLSubsetError('expected "key: value" in %r' % text, number)
        result[_scalar(key, number)] = _scalar(value, number)
    return result
