"""Section citations point into docs/method.md, and no document outside the repository is cited.

Every ``§N`` / ``§N.M`` in the *.py and *.md files of cmid_mm/, configs/, tools/, tests/, docs/
and README.md cites docs/method.md (written ``docs/method.md §2.4``, ``method.md §2.4`` or, in
a list, ``§2.4``); the cited section must be a numbered heading there. The developers'
specification and the other documents of the project's working notes are not part of the
repository: naming them leaves a reader with a reference they cannot follow.
"""
import os
import os.path as osp
import re

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SCAN_DIRS = ('cmid_mm', 'configs', 'tools', 'tests', 'docs')
SCAN_FILES = ('README.md', )
HEADING = re.compile(r'^#{1,6}\s+(\d+(?:\.\d+)*)\s+\S', re.M)
CITATION = re.compile(r'§\s?(\d+(?:\.\d+)*)?')
# Written so that this file does not match itself.
OUTSIDE = {
    'the developers\' spec by name': re.compile('CMID_' 'SPEC'),
    'a "spec" section': re.compile(r'\bspec\s*(?:§|section\b)', re.I),
    'the spec as a document': re.compile(r'\b(?:the|our)\s+spec\b(?![_.(])|\bspec\'s\b',
                                         re.I),
    'the project brief': re.compile(r'project\s+brief', re.I),
    'a working-notes document': re.compile(r'\b(?:DOWNSTREAM|SLURM|STACK|STYLE)\.md\b'),
    'the shared docs folder': re.compile(r'shared/docs\b'),
    'a docs page that does not exist': re.compile(r'docs/downstream\.md'),
}


def _files():
    for name in SCAN_FILES:
        yield name
    for top in SCAN_DIRS:
        for dirpath, dirnames, filenames in os.walk(osp.join(REPO, top)):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            for fn in filenames:
                if fn.endswith(('.py', '.md')):
                    yield osp.relpath(osp.join(dirpath, fn), REPO)


def _lines(rel):
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        yield from enumerate(f.read().splitlines(), 1)


def method_sections():
    with open(osp.join(REPO, 'docs', 'method.md'), encoding='utf-8') as f:
        return set(HEADING.findall(f.read()))


def test_method_md_has_numbered_sections():
    sections = method_sections()
    # the sections the code is organised around
    for needed in ('2.4', '2.5', '2.6', '3', '4.1', '4.3', '5.1', '5.2', '5.3', '5.4', '6.1',
                   '6.2', '6.3', '8', '9'):
        assert needed in sections, needed


def test_every_section_citation_exists():
    sections = method_sections()
    bad = []
    this = osp.relpath(__file__, REPO)  # its examples are not citations
    for rel in _files():
        if rel == this:
            continue
        for no, line in _lines(rel):
            for m in CITATION.finditer(line):
                if m.group(1) not in sections:
                    bad.append(f'{rel}:{no}: {m.group(0)!r} in: {line.strip()}')
    assert not bad, ('citations of sections docs/method.md does not have (add the section or '
                     'fix the number):\n' + '\n'.join(bad))


def test_no_reference_to_documents_outside_the_repository():
    bad = []
    this = osp.relpath(__file__, REPO)
    for rel in _files():
        if rel == this:
            continue
        for no, line in _lines(rel):
            for what, pattern in OUTSIDE.items():
                if pattern.search(line):
                    bad.append(f'{rel}:{no}: {what}: {line.strip()}')
    assert not bad, ('references to documents that are not in the repository (cite '
                     'docs/method.md §N or the paper instead):\n' + '\n'.join(bad))


@pytest.mark.parametrize('line,ok', [
    ('see docs/method.md §2.4', True),
    ('(method.md §3-§5)', True),
    ('§7.9', False),
    ('a bare § sign', False),
])
def test_citation_checker_itself(line, ok):
    sections = {'2.4', '3', '5'}
    found = [m.group(1) in sections for m in CITATION.finditer(line)]
    assert all(found) == ok and found
