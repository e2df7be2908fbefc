"""The one place the version lives.

``__version__`` is the version of every distribution in this repository (core and each
plugin: ``python scripts/release.py set-version X.Y.Z`` writes it everywhere, and a test fails
when one differs). ``PLUGIN_API`` is the plugin API this aggcore offers: plugins require
``aggcore>=PLUGIN_API.0,<next`` and ``aggcore plugins`` warns about one built for another.
"""

__version__ = "0.1.0"
PLUGIN_API = "0.1"
