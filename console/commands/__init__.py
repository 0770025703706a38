"""The ``engage-console`` sub-commands for scripts, one module per verb."""
