"""The one error predict raises for bad input."""


class PredictError(ValueError):
    """Bad input for predict (the message says which file and what to do)."""
