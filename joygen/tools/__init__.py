"""Tools around the pipeline: many edits (`batch`), speed (`bench`), training data (`prepare`), training
the editor (`train`). Each is a ``python -m joygen`` command."""
