"""The command line: argument parsing and one small module per command. The only printing layer."""
