"""The ``slmdeploy`` command line: thin Click commands over the Python API."""
