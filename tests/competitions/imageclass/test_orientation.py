import numpy as np
import torch

from kit.competitions.imageclass.training import augmentation


def orientations(any_orientation: bool) -> set[int]:
    """Which of the 8 orientations of an asymmetric picture the augmentation produced over 200 draws."""
    picture = torch.arange(16.0).reshape(1, 4, 4)
    turned = [torch.rot90(picture, k, (1, 2)) for k in range(4)]
    known = [*turned, *(t.flip(2) for t in turned)]
    augment = augmentation(0, any_orientation)
    for t in augment.transforms:  # orientation only: no interpolated rotation, zoom or noise
        if type(t).__name__ in ("RandRotated", "RandZoomd", "RandGaussianNoised"):
            t.prob = 0.0
    seen = set()
    for _ in range(200):
        out = torch.as_tensor(np.asarray(augment({"image": picture})["image"]))
        seen.add(next(i for i, k in enumerate(known) if torch.equal(out, k)))
    return seen


def test_a_cell_may_come_in_any_orientation_and_a_chest_x_ray_only_mirrored():
    assert orientations(True) == set(range(8))
    assert orientations(False) == {0, 4}
