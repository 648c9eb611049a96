"""User-facing errors: the CLI prints their message without a traceback."""


class KitError(Exception):
    """Bad input or a failed precondition; the message names the file, row or field and what was expected."""


class DataError(KitError):
    """A data file (CSV, DICOM, npz) is missing, unreadable or malformed."""


class UnknownNameError(KitError, KeyError):
    """A registry lookup failed; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
