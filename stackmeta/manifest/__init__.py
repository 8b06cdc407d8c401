"""Reading a release: the spec language of cmsdist, the cmsdist reader (git tags, folders),
the walk to the Python stack, pip freeze input."""
