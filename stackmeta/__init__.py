"""stackmeta: a CMSSW release's Python stack as constraints locks and metapackages."""

__version__ = "0.1.0"
