"""The judge: one interface over an OpenAI-compatible server or an in-process model.

    judge = Judge(JudgeConfig(backend="local"))
    judge.judge([JudgeRequest(candidate="pneumonia", reference="lobar pneumonia")])  # -> [Verdict]
"""

from medix.judge.core import Judge
from medix.judge.types import JudgeRequest, Verdict

__all__ = ["Judge", "JudgeRequest", "Verdict"]
