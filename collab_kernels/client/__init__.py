"""The Python client and the ``collab-kernels`` command line, for headless runs."""
