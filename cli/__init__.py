"""The `arnkit` command line (installed as the package `arnkit_cli`)."""
