"""Checking a release against an index: the closure of its pins' requirements, the platform matrix and
laptop report, snapshots of what a check reads."""
