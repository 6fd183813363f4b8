"""medix: open-ended medical reinforcement learning (MediX-R1) — composite reward, judge, training, evaluation.

Research use only: nothing produced by medix is for clinical decisions.
"""

from medix.errors import MedixError

__version__ = "0.1.0"
__all__ = ["MedixError", "__version__"]
