"""tokend: one Acoustic Campaign OAuth access token, cached and served locally."""

__version__ = "0.1.0"
