"""The one exception type that the command line turns into a one-line error and exit code 2."""


class MedfuseError(Exception):
    """A problem with the user's input or configuration.

    The message must name the file, column or key at fault and say how to fix it; the CLI prints it
    as ``medfuse-bench: error: <message>`` and exits with code 2.
    """
