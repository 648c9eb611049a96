from pathlib import Path

from kit.reference import reference

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_the_reference_is_generated_from_the_parser_and_current():
    text = reference()
    assert (
        "## `kit train-fold`" in text and "| `--resume` | continue from model_last.pt (a finished fold: kept) |" in text
    )
    assert "| `--trials` TRIALS | trials in all (a resumed search counts done ones) | `20` |" in text
    assert REFERENCE.read_text() == text, "docs/reference.md is stale: run `task docs`"
