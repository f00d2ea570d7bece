"""xbarsim: device-to-algorithm co-simulation of analog in-memory-computing crossbars.

>>> import xbarsim
>>> table = xbarsim.run()                      # the built-in quickstart
>>> table = xbarsim.sweep("examples/quickstart.yaml", out="results.csv")
"""

from .config import Config, ConfigError, load_config, validate_config
from .experiment import run_point
from .sweep import run, sweep

__all__ = ["Config", "ConfigError", "load_config", "validate_config", "run", "run_point", "sweep"]
__version__ = "0.1.0"
