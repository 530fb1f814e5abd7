"""ipywidgets front end over :mod:`semcopy_lib.app` (the dashboard notebook only calls this)."""
