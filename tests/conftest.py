"""The tests' fixtures are a plugin: tests/support/plugin.py."""
pytest_plugins = ("support.plugin",)
