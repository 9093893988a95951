"""shiftwatch: keeps computer-vision models honest in production.

This package holds wiring only (settings, database engine, app factory, CLI).
Each domain lives in its own subpackage: ``shiftwatch.collector``,
``shiftwatch.detectors``, ``shiftwatch.labeling``, ``shiftwatch.retrain``,
``shiftwatch.rollout``. Importing this package imports nothing heavy, so the
client SDK (``shiftwatch_client.client``) stays light.
"""

__version__ = "0.1.0"
