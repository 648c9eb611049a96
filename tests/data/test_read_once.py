"""A big folder is listed once per command, and afresh by the next one."""

from kit.data.read_once import one_read, read_once


def test_a_read_is_done_once_inside_a_scope_and_afresh_outside():
    calls = []

    @read_once
    def listing(folder, spec):
        calls.append(folder)
        return [folder, len(calls)]

    assert listing("a", {}) == ["a", 1] and listing("a", {}) == ["a", 2]  # no scope: every call reads
    with one_read():
        first = listing("a", {"k": 1})
        with one_read():  # a scope inside a scope shares it
            assert listing("a", {"k": 1}) is first
        assert listing("a", {"k": 2}) is not first and listing("b", {"k": 1})[0] == "b"
    assert len(calls) == 5
    listing("a", {"k": 1})
    assert len(calls) == 6, "a closed scope forgets what it read"


def test_prepare_lists_a_class_per_folder_tree_once(tmp_path, monkeypatch):
    from kit.competitions.imageclass import layouts
    from kit.config import apply_overrides, load_experiment
    from kit.train import distributed
    from kit.train.prepare import prepare
    from tests.competitions.imageclass.test_layouts import noise_tree

    noise_tree(tmp_path / "tree", per_class=6, shape=(12, 12, 3))
    listed = []
    reader = layouts.LAYOUTS["folders"]
    monkeypatch.setitem(layouts.LAYOUTS, "folders", lambda *args: listed.append(args) or reader(*args))
    cfg = apply_overrides(load_experiment("imagefolder_resnet18"), [f"data.dir={tmp_path / 'tree'}", "data.folds=3"])
    _, training, folds = prepare(cfg, distributed.Context())
    assert len(listed) == 1 and len(training.keys) == 12 and len(folds) == 12
    prepare(cfg, distributed.Context())
    assert len(listed) == 2, "the next command lists the folder again"
