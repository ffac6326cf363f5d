"""ML anomaly detection for Netdata charts, as a python.d module and a standalone plugin."""

__version__ = '0.1.0'
