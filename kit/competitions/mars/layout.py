"""Facts of the Mars terrain segmentation challenge (AN2DL 2024-25, homework 2)."""

SLUG = "an2dl-mars-terrain-segmentation"  # the in-class competition's slug is not recorded; set it for submit
FILE = "mars_for_students.npz"
CLASSES = ("background", "soil", "bedrock", "sand", "big_rock")
NUM_CLASSES = len(CLASSES)
BIG_ROCK = CLASSES.index("big_rock")
HEIGHT, WIDTH = 64, 128
PIXELS = HEIGHT * WIDTH
ORACLE_FILE = "oracle.npz"  # the phantom's true class probabilities per training pixel (kit synth only)
