"""`switchback`: the command-line client of a Switchback installation's public REST API.

It never touches the platform's database, so it works the same against a remote
installation as against `manage.py up` on this machine.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
