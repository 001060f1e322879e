"""Sub-commands of the ``xbarref`` command, one module each (see xbarref.cli)."""
