"""fraudwatch: log-and-CDR fraud detection for VoIP softswitches (VOS3000 first)."""

__version__ = "0.1.0"
