"""Statistics and figures over the tidy result tables (confirmation phase)."""

from analysis.stats import Comparison, OmnibusResult, adjust_secondary, compare_methods

__all__ = ["Comparison", "OmnibusResult", "adjust_secondary", "compare_methods"]
