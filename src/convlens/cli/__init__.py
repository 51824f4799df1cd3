"""The ``convlens`` command line: thin Typer commands that parse and delegate."""
