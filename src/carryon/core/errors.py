"""Errors the command line maps to exit codes (2: bad input, 1: any other failure)."""


class CarryOnError(Exception):
    """A failure with a one-line cause meant for the user (exit code 1)."""


class BadInput(CarryOnError):
    """Bad input: the message names what is wrong and where (exit code 2)."""


class ModelCallError(CarryOnError):
    """A model call failed for good (retries exhausted or a permanent error such as 401)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
