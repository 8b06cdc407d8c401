"""Writing locks: export (a release's manifest into its record and constraints lock, one release or
every tag), the constraints lock, hashed and PEP 751 forms, diffs between releases, locks and
environments."""
