import pytest

from kit.errors import KitError
from kit.models.registry import create_model


@pytest.mark.parametrize(
    "model, library", [("resnet_classifier", "timm"), ("unet_classifier", "segmentation-models-pytorch")]
)
def test_an_encoder_typo_names_the_nearest_encoders(model, library):
    with pytest.raises(KitError, match=rf"model.encoder='resnet_18' is not a {library} encoder; nearest: .*resnet18"):
        create_model(model, 3, 2, encoder="resnet_18")


def test_timm_encoders_pass_through_smp_by_their_tu_prefix():
    model = create_model("smp_segmenter", 1, 5, encoder="tu-resnet18", decoder_channels=[32, 16, 8, 8, 8])
    assert model.encoder is not None
