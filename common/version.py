"""The one version of the distribution; the agent reports it and the server serves it."""

__version__ = "1.0.0"
