"""Layout readers and their synthetic writers: exact layouts, mixed formats and colour modes, one-line errors."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kit.competitions import get_competition
from kit.competitions.imageclass import layouts, synth
from kit.errors import KitError

REAL = Path(__file__).parents[4] / "shared" / "data" / "pneumoniamnist"


def folders_spec(**extra):
    return {"family": "image_classification", "layout": "folders", "classes": None, "channels": 3, **extra}


def test_npz_medmnist_and_an2dl_arrays(tmp_path):
    spec = {"layout": "npz", "file": "x.npz", "arrays": "medmnist", "classes": ["a", "b", "c"], "channels": 1}
    synth.generate(tmp_path / "m", spec, train=16, test=6, seed=0)
    samples = layouts.read_layout(tmp_path / "m", spec)
    assert len(samples.train.keys) == 16 + 2 and samples.test.labels is not None and len(samples.test.keys) == 6
    assert samples.train.arrays.shape == (18, 28, 28) and set(samples.train.labels) == {0, 1, 2}

    spec = {"layout": "npz", "classes": list("abcdefgh"), "channels": 3, "synth_size": 96}
    synth.generate(tmp_path / "b", spec, train=20, test=0, seed=0)
    with np.load(tmp_path / "b" / "training_set.npz") as saved:
        assert saved["images"].shape == (20, 96, 96, 3) and saved["labels"].shape == (20, 1)
    samples = layouts.read_layout(tmp_path / "b", spec)
    assert samples.train.keys[:3] == ["0", "1", "2"] and samples.test.keys == []


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"images": np.zeros((4, 8, 8, 3), np.uint8), "labels": np.array([0, 1, 9, 1])}, "row 2 has label 9"),
        ({"images": np.zeros((4, 8, 8, 3), np.uint8), "labels": np.zeros(3, int)}, "4 images but 3 labels"),
        ({"images": np.zeros((4, 8, 8, 5), np.uint8), "labels": np.zeros(4, int)}, "expected (N, H, W) or"),
        ({"pictures": np.zeros((4, 8, 8), np.uint8)}, "arrays ['pictures']; expected images and labels"),
        ({"images": np.zeros((4, 8, 8), np.float32), "labels": np.zeros(4, int)}, "dtype float32"),
    ],
)
def test_npz_keys_shapes_and_labels_that_are_off(tmp_path, arrays, fragment):
    np.savez(tmp_path / "training_set.npz", **arrays)
    with pytest.raises(KitError, match="training_set.npz") as caught:
        layouts.read_layout(tmp_path, {"layout": "npz", "classes": ["a", "b"]})
    assert fragment in str(caught.value)


def test_folders_read_mixed_formats_and_colour_modes(tmp_path):
    spec = folders_spec(synth_classes=["cat", "dog"])
    synth.generate(tmp_path / "tree", spec, train=12, test=0, seed=0)
    suffixes = {p.suffix for p in (tmp_path / "tree").rglob("*.*")}
    assert suffixes == {".png", ".jpg", ".jpeg"}
    modes = {Image.open(p).mode for p in (tmp_path / "tree").rglob("*.*")}
    assert {"RGB", "RGBA", "L"} <= modes
    samples = layouts.read_layout(tmp_path / "tree", spec)
    assert samples.classes == ["cat", "dog"] and samples.train.keys[0].startswith("cat/")
    for path in samples.train.files:
        assert layouts.load_image(path, 32, 3).shape == (32, 32, 3)
        assert layouts.load_image(path, 32, 1).shape == (32, 32, 1)


def test_folders_with_train_and_unlabelled_test(tmp_path):
    for name in ("train/a/1.png", "train/b/2.png", "test/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 12)).save(tmp_path / name)
    samples = layouts.read_layout(tmp_path, folders_spec())
    assert samples.classes == ["a", "b"] and samples.train.keys == ["train/a/1.png", "train/b/2.png"]
    assert samples.test.keys == ["test/x.png"] and samples.test.labels is None


def test_an_empty_class_folder_and_an_unreadable_image_name_the_file(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (9, 9)).save(tmp_path / "a" / "ok.png")
    (tmp_path / "b").mkdir()
    with pytest.raises(KitError, match=r"/b: class folder holds no images"):
        layouts.read_layout(tmp_path, folders_spec())
    (tmp_path / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(KitError, match=r"broken.jpg: unreadable image"):
        layouts.load_image(tmp_path / "b" / "broken.jpg", 16, 3)
    with pytest.raises(KitError, match=r"folder\(s\) b are not among the classes"):
        layouts.read_layout(tmp_path, folders_spec(classes=["a"]))


def test_tinyimagenet_layout_with_grayscale_jpegs(tmp_path):
    spec = {"layout": "tinyimagenet", "synth_classes": 4}
    synth.generate(tmp_path / "tin", spec, train=40, test=12, seed=0)
    root = tmp_path / "tin"
    assert (root / "wnids.txt").exists() and (root / "words.txt").exists() and (root / "test" / "images").is_dir()
    samples = layouts.read_layout(root, spec)
    assert len(samples.classes) == 4 and len(samples.train.keys) == 40 and len(samples.test.keys) == 12
    assert samples.train.keys[0].split("/")[:3] == ["train", samples.classes[0], "images"]
    modes = {Image.open(p).mode for p in samples.train.files + samples.test.files}
    assert modes == {"RGB", "L"}, "some pictures are grayscale, as in the real data"
    assert all(layouts.load_image(p, 64, 3).shape == (64, 64, 3) for p in samples.train.files)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(KitError, match=r"val_annotations.txt: row 1 .* names no wnid"):
        layouts.read_layout(root, spec)


@pytest.mark.skipif(not REAL.exists(), reason=f"real PneumoniaMNIST not found at {REAL}")
def test_real_pneumoniamnist_reads_with_its_official_splits():
    comp = get_competition("pneumoniamnist")
    samples = layouts.read_layout(REAL, comp.spec)
    assert len(samples.train.keys) == 3882 + 524 and len(samples.test.keys) == 624
    assert np.bincount(samples.train.labels).tolist() == [388 + 135, 3494 + 389]
    assert np.bincount(samples.test.labels).tolist() == [234, 390]


def picture(path: Path, mode: str = "RGB", size=(10, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_a_16_bit_png_keeps_its_contrast(tmp_path):
    ramp = np.linspace(1000, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit X-ray stored as 16 bits
    Image.fromarray(ramp).save(tmp_path / "xray.png")
    with Image.open(tmp_path / "xray.png") as image:
        assert image.mode.startswith("I")
        assert set(np.unique(np.asarray(image.convert("L")))) == {255}, "PIL alone clamps it to white"
    loaded = layouts.load_image(tmp_path / "xray.png", 64, 1)[..., 0]
    assert loaded.min() == 0 and loaded.max() == 255
    assert np.all(np.diff(loaded.astype(int).ravel()) >= 0), "the ramp stays a ramp"
    assert np.unique(loaded).size > 200
    Image.fromarray(np.full((8, 8), 700, np.uint16)).save(tmp_path / "flat.png")
    assert layouts.load_image(tmp_path / "flat.png", 8, 3).shape == (8, 8, 3)


def test_kaggle_train_val_test_split_folders(tmp_path):
    for name in ("train/NORMAL/1.jpeg", "train/PNEUMONIA/2.jpeg", "train/PNEUMONIA/3.jpeg", "val/NORMAL/4.jpeg",
                 "val/PNEUMONIA/5.jpeg", "test/NORMAL/6.jpeg", "test/PNEUMONIA/7.jpeg"):  # fmt: skip
        picture(tmp_path / "chest_xray" / name)
    samples = layouts.read_layout(tmp_path / "chest_xray", folders_spec(classes=["normal", "pneumonia"]))
    assert samples.classes == ["normal", "pneumonia"], "folder names match the classes whatever their case"
    assert samples.train.keys == ["train/NORMAL/1.jpeg", "train/PNEUMONIA/2.jpeg", "train/PNEUMONIA/3.jpeg",
                                  "val/NORMAL/4.jpeg", "val/PNEUMONIA/5.jpeg"]  # fmt: skip
    assert list(samples.train.labels) == [0, 1, 1, 0, 1]
    assert samples.test.keys == ["test/NORMAL/6.jpeg", "test/PNEUMONIA/7.jpeg"] and list(samples.test.labels) == [0, 1]
    for name in ("Training/glioma/a.png", "Training/meningioma/b.png", "Testing/glioma/c.png"):
        picture(tmp_path / "brain" / name)
    samples = layouts.read_layout(tmp_path / "brain", folders_spec())
    assert samples.classes == ["glioma", "meningioma"] and samples.test.keys == ["Testing/glioma/c.png"]


def test_class_folders_are_read_recursively(tmp_path):
    for name in ("a/1.png", "a/scan2/2.png", "a/scan2/deeper/3.png", "b/4.png", "b/.hidden/5.png"):
        picture(tmp_path / name)
    samples = layouts.read_layout(tmp_path, folders_spec())
    assert samples.train.keys == ["a/1.png", "a/scan2/2.png", "a/scan2/deeper/3.png", "b/4.png"]
    assert list(samples.train.labels) == [0, 0, 0, 1]


@pytest.mark.parametrize(
    "files, spec, fragment",
    [
        (["only/1.png", "only/2.png"], {}, r"1 class folder\(s\) \(only\); .* at least two classes"),
        (["a/1.png", "b/2.png", "stray.png"], {}, r"1 image\(s\) outside the class folders \(e.g. stray.png\)"),
        (["train/a/1.png", "train/b/2.png", "extra/c.png"], {}, r"split folders \(train\) beside other folders"),
        (["a/1.png", "b/2.png", "test/3.png"], {}, r"split folder\(s\) test/ but no train/"),
        (["Cat/1.png", "cat/2.png", "dog/3.png"], {"classes": ["cat", "dog"]}, r"Cat/ and cat/ are both class 'cat'"),
        (["train/a/1.png", "train/b/2.png", "Train/a/3.png"], {}, r"are both the train split"),
    ],
)
def test_folder_trees_that_would_train_wrongly_are_refused(tmp_path, files, spec, fragment):
    for name in files:
        picture(tmp_path / name)
    with pytest.raises(KitError, match=fragment):
        layouts.read_layout(tmp_path, folders_spec(**spec))


def test_a_dataset_published_in_two_layouts_reads_either(tmp_path):
    spec = folders_spec(layout=["npz", "folders"], file="cells.npz", classes=["Basophil", "Immature granulocytes"],
                        aliases={"ig": "Immature granulocytes"})  # fmt: skip
    for name in ("BASOPHIL/a.jpg", "ig/c.jpg"):
        picture(tmp_path / "tree" / name)
    samples = layouts.read_layout(tmp_path / "tree", spec)
    assert samples.train.keys == ["BASOPHIL/a.jpg", "ig/c.jpg"] and list(samples.train.labels) == [0, 1]
    images = np.zeros((4, 8, 8, 3), np.uint8)
    (tmp_path / "arrays").mkdir()
    np.savez(tmp_path / "arrays" / "cells.npz", images=images, labels=np.array([0, 1, 1, 0]))
    assert layouts.read_layout(tmp_path / "arrays", spec).train.keys == ["0", "1", "2", "3"]
    with pytest.raises(KitError, match=r"cells.npz: file not found"):
        layouts.read_layout(tmp_path / "nothing", spec)
    with pytest.raises(KitError, match=r"dataset.aliases: ig: 'Granulocytes' is not among the classes"):
        layouts.read_layout(tmp_path / "tree", {**spec, "aliases": {"ig": "Granulocytes"}})


PBC = Path(__file__).parents[4] / "shared" / "data" / "pbc-blood-cells" / "PBC_dataset_normal_DIB"


@pytest.mark.skipif(not PBC.exists(), reason="../shared/data/pbc-blood-cells is absent")
def test_the_real_pbc_class_folders_read_as_the_blood_cell_experiment_s_classes():
    from kit.config import load_experiment

    spec = load_experiment("bloodcells_mobilenetv3")["dataset"]
    samples = layouts.read_layout(PBC, spec)
    assert samples.classes[3] == "Immature granulocytes"
    assert np.bincount(samples.train.labels).tolist() == [50] * 8
    assert all(k.startswith("ig/") for k, y in zip(samples.train.keys, samples.train.labels, strict=True) if y == 3)
    assert layouts.load_image(samples.train.files[0], 96, 3).shape == (96, 96, 3)


def noise_tree(root, per_class: int, shape: tuple[int, ...], classes=("a", "b")) -> None:
    """A class-per-folder tree of random PNGs, <root>/<class>/<k>.png."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / name / f"{k}.png")


def test_images_are_decoded_once_per_data_and_size_then_read_from_the_cache(tmp_path, kit_home, monkeypatch):
    """A second run of the same files memory-maps the first run's decoded array; a rewritten image, another size
    or a failed decode never serve stale or partial pixels."""
    from kit.competitions import competition_of
    from kit.competitions.imageclass import training
    from kit.config import apply_overrides, load_experiment

    noise_tree(tmp_path / "tree", per_class=3, shape=(20, 24, 3))
    cfg = apply_overrides(load_experiment("imagefolder_resnet18"), [f"data.dir={tmp_path / 'tree'}", "data.size=16"])
    comp = competition_of(cfg)
    first = np.array(comp.training(cfg, tmp_path / "tree").images)
    cached = list((kit_home / "cache" / "decoded").glob("*.npy"))
    assert len(cached) == 1 and first.shape == (6, 16, 16, 3)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    with monkeypatch.context() as patched:
        patched.setattr(training, "load_image", no_decoding)
        again = comp.training(cfg, tmp_path / "tree")
        assert isinstance(again.images, np.memmap) and np.array_equal(again.images, first)
        shown = again.dataset([1, 4], "valid")
        assert shown.images is again.images, "a dataset reads the memory-mapped cache, never a copy of all of it"
        assert shown[1]["id"] == 4 and shown[1]["target"] == 1 and shown[1]["image"].shape == (3, 16, 16)

    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "tree" / "b" / "2.png")
    changed = comp.training(cfg, tmp_path / "tree").images
    assert changed[5].max() == 0 and np.array_equal(changed[:5], first[:5])
    bigger = comp.training(apply_overrides(cfg, ["data.size=8"]), tmp_path / "tree").images
    assert bigger.shape == (6, 8, 8, 3) and len(list((kit_home / "cache" / "decoded").glob("*.npy"))) == 3

    (tmp_path / "tree" / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(KitError, match=r"1.png: unreadable image"):
        _ = comp.training(cfg, tmp_path / "tree").images
    left = [p.name for p in (kit_home / "cache" / "decoded").iterdir() if not p.name.endswith(".lock")]
    assert len(left) == 3 and all(name.endswith(".npy") for name in left), "no partial array"


def test_fit_content_cuts_to_the_largest_bright_region_and_pads_it_square():
    """A hand-made picture: a bright 30 × 20 subject on a wide black border, and a 2 × 2 speck of text elsewhere."""
    canvas = np.zeros((100, 160), np.uint8)
    canvas[40:70, 90:110] = 200  # the subject: rows 40-69, columns 90-109
    canvas[5:7, 5:7] = 255  # a marker, brighter than the subject but tiny
    cut = layouts.crop_to_content(Image.fromarray(canvas), margin=0.0)
    assert cut.size == (30, 30), "the subject's 30 rows, padded to a square"
    array = np.asarray(cut)
    assert (array[:, 5:25] == 200).all() and (array[:, :5] == 0).all() and (array[:, 25:] == 0).all()
    assert array.max() == 200, "the marker is not part of the subject"
    fitted = layouts.fit_array(canvas[..., None], 15, 1, "nearest", fit="content")  # a 3-pixel margin (2% of 160)
    assert fitted.shape == (15, 15, 1) and fitted[7, 7, 0] == 200 and fitted[0, 0, 0] == 0
    assert (fitted == 200).mean() > 0.35, "the subject (600 of the 36 × 36 cut's pixels) fills the frame"
    stretched = layouts.fit_array(canvas[..., None], 15, 1, "nearest")
    assert (stretched == 200).mean() < 0.1, "stretch keeps the border: the subject stays small"
    blank = layouts.crop_to_content(Image.fromarray(np.zeros((10, 20), np.uint8)))
    assert blank.size == (20, 20), "nothing bright: the whole picture, padded square"


def test_fit_content_is_its_own_cache_and_a_codabench_package_refuses_it(tmp_path, kit_home):
    from kit.codabench import package
    from kit.competitions import competition_of
    from kit.config import apply_overrides, load_experiment

    noise_tree(tmp_path / "tree", per_class=3, shape=(20, 24, 3))
    cfg = apply_overrides(load_experiment("imagefolder_resnet18"), [f"data.dir={tmp_path / 'tree'}", "data.size=16"])
    comp = competition_of(cfg)
    stretched = np.array(comp.training(cfg, tmp_path / "tree").images)
    fitted = {**cfg, "data": {**cfg["data"], "fit": "content"}}  # a key that an experiment names to override it
    content = comp.training(fitted, tmp_path / "tree")
    assert content.fit == "content" and not np.array_equal(np.array(content.images), stretched)
    assert len(list((kit_home / "cache" / "decoded").glob("*.npy"))) == 2
    with pytest.raises(KitError, match=r"config: data.fit='crop'; expected stretch .* or content"):
        comp.training({**cfg, "data": {**cfg["data"], "fit": "crop"}}, tmp_path / "tree")

    class Run:
        name, config = "mine", fitted

        def prepare(self):
            return comp, content, None

    with pytest.raises(KitError, match="data.fit=content: a Codabench model.py fits pictures by stretch only"):
        package._trained(Run())
