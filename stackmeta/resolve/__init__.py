"""Resolving: the nearest consistent set of a release's pins (resolvelib), the candidate sources it
draws on, overlays and group baselines on a release, the virtualenvs they are installed into."""
