"""opsdrill: the forecasting stack's operations runbook as checks, drills and load gates."""

__version__ = "0.1.0"
