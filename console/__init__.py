"""The operator console (Textual) and the ``engage-console`` command line."""
