"""Every loss a training can name in `loss.name`, in one registry: by the kind of target a training predicts
(image_classification, segmentation, mars, chestxray14, rsna, rsna_localiser, reconstruction) and the name.
The losses any dataset of a family can use live here; the few that need one competition's tables (RSNA's severity
weights, its level heatmaps) live beside those tables and register here all the same. A new loss is one class
with @register_loss and its name in a YAML."""

from kit.losses import classification, multilabel, pixels  # noqa: F401 - each module registers its losses
from kit.losses.registry import LOSSES, build_loss, register_loss

__all__ = ["LOSSES", "build_loss", "register_loss"]
