"""Packaging: the metapackage project of a release or group, its build (sdist and wheel), publishing
with twine, the maintainer's pipeline over every record."""
