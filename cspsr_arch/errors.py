"""Errors for bad user input: the command line prints their message alone, without a traceback."""


class CSPSRInputError(ValueError):
    """Bad input from the user (missing file, mismatched sizes, unknown option key...).

    The message names the offending file or key and says how to fix it.
    """
