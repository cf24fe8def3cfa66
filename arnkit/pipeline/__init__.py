"""Orchestration: config-free defaults, workspace caching, one function per CLI command."""
