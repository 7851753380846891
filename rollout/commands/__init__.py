"""One module per verb; each returns a Report the CLI renders and exits with."""
