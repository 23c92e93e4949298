"""The command line: ``alertline`` and its subcommands."""
