"""The ``carnet`` command: one module per command group."""
