"""model-index.yml and the per-folder metafile.yml files against the configs on disk.

``mim search cmid_mm`` lists what the metafiles hold and ``mim train cmid_mm NAME.py`` finds a
config by its file name anywhere in the installed package, so: every config (not ``_base_``) is
in exactly one metafile, every metafile entry names a config that exists, model-index.yml
imports every metafile, entries say task / dataset / backbone and claim no weights or results
(none are released), and a config's file name is unique in what the package installs.
"""
import glob
import os.path as osp
from collections import Counter, defaultdict

import pytest
import yaml

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _configs():
    """Repository-relative paths of every config a user runs (not ``_base_``)."""
    paths = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    rel = [osp.relpath(p, REPO) for p in paths]
    return sorted(r for r in rel if '_base_' not in r.split(osp.sep)
                  and '__pycache__' not in r.split(osp.sep))


def _index():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        return yaml.safe_load(f)


def _entries():
    """(metafile, entry) for every model of every metafile model-index.yml imports."""
    out = []
    for meta in _index()['Import']:
        with open(osp.join(REPO, meta)) as f:
            doc = yaml.safe_load(f)
        out += [(meta, m) for m in doc.get('Models', [])]
    return out


def test_model_index_imports_every_metafile_and_nothing_else():
    imported = _index()['Import']
    on_disk = sorted(osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', '**', 'metafile.yml'), recursive=True))
    assert len(imported) == len(set(imported)), f'imported twice: {imported}'
    missing = sorted(set(imported) - set(on_disk))
    assert not missing, f'model-index.yml imports metafiles that do not exist: {missing}'
    unimported = sorted(set(on_disk) - set(imported))
    assert not unimported, f'metafiles model-index.yml does not import: {unimported}'


def test_every_config_is_in_exactly_one_metafile_entry():
    listed = Counter(m['Config'] for _, m in _entries())
    twice = sorted(c for c, n in listed.items() if n > 1)
    assert not twice, f'configs listed more than once in the metafiles: {twice}'
    missing = sorted(set(_configs()) - set(listed))
    assert not missing, (
        f'configs in no metafile.yml (add an entry to the metafile.yml of their folder, '
        f'with Name, In Collection, Config and Metadata Task / Training Data / Backbone): '
        f'{missing}')


def test_every_metafile_entry_names_an_existing_config():
    gone = sorted(f'{meta}: {m.get("Name")} -> {m.get("Config")}' for meta, m in _entries()
                  if not osp.isfile(osp.join(REPO, m.get('Config') or '')))
    assert not gone, f'metafile entries whose Config does not exist: {gone}'
    # the entry's name is its config's file name (what `mim search --config` / `mim train` take)
    misnamed = sorted(f'{meta}: {m["Name"]} -> {m["Config"]}' for meta, m in _entries()
                      if osp.splitext(osp.basename(m['Config']))[0] != m['Name'])
    assert not misnamed, misnamed


def test_entries_say_task_dataset_backbone_and_claim_no_weights_or_results():
    collections = set()
    for meta in _index()['Import']:
        with open(osp.join(REPO, meta)) as f:
            collections |= {c['Name'] for c in yaml.safe_load(f).get('Collections', [])}
    for meta, m in _entries():
        assert m.get('In Collection') in collections, (meta, m['Name'])
        md = m.get('Metadata') or {}
        for key in ('Task', 'Training Data', 'Backbone'):
            assert isinstance(md.get(key), str) and md[key].strip(), \
                f'{meta}: {m["Name"]} has no Metadata.{key}'
        # nothing released, nothing reported: an entry must not pretend otherwise
        assert 'Weights' not in m and 'Results' not in m, f'{meta}: {m["Name"]}'


def test_pretraining_recipes_are_listed_as_pretraining():
    by_config = {m['Config']: m for _, m in _entries()}
    for name in ('cmid_swin_pretrain', 'cmid_resnet50_pretrain', 'cmid_vit-base-p16_pretrain'):
        md = by_config[f'configs/{name}.py']['Metadata']
        assert md['Task'] == 'Self-Supervised Pretraining', name
        assert md['Training Data'] == 'MillionAID', name


def test_config_file_names_are_unique_in_the_installed_package():
    """``mim train cmid_mm NAME.py`` searches the whole installed package (cmid_mm/ with
    .mim/configs and .mim/tools) for a file called NAME.py and stops when there are two; mim
    search keys its table on the entry names (= file names), so a second one is dropped."""
    names = Counter(m['Name'] for _, m in _entries())
    assert not [n for n, k in names.items() if k > 1], \
        f'metafile entry names must be unique: {[n for n, k in names.items() if k > 1]}'
    shipped = defaultdict(list)
    for top in ('cmid_mm', 'configs', 'tools'):
        for p in glob.glob(osp.join(REPO, top, '**', '*.py'), recursive=True):
            rel = osp.relpath(p, REPO)
            if not rel.startswith(osp.join('cmid_mm', '.mim')):
                shipped[osp.basename(p)].append(rel)
    clashes = {osp.basename(c): shipped[osp.basename(c)] for c in _configs()
               if len(shipped[osp.basename(c)]) > 1}
    assert not clashes, (
        '`mim train cmid_mm NAME.py` cannot pick one of these (rename the configs so each '
        f'file name is unique in the package): {clashes}')
