"""medix: open-ended medical reinforcement learning (MediX-R1) — composite reward, judge, training, evaluation.

Research use only: nothing produced by medix is for clinical decisions.
"""

from medix.errors import MedixError

__version__ = "0.1.0"
__all__ = ["Assistant", "MedixError", "__version__"]


def __getattr__(name):
    if name == "Assistant":  # lazy: `import medix` stays light (no torch / transformers)
        from medix.infer import Assistant

        return Assistant
    raise AttributeError(f"module 'medix' has no attribute {name!r}")
