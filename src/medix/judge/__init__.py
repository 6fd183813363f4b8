"""The judge: one interface, two modes (one-turn verdicts, multi-round conversations), two backends
(an OpenAI-compatible server, or an in-process model read through its next-token logits).

    judge = Judge(JudgeConfig(backend="local"))
    judge.judge([JudgeRequest(candidate="pneumonia", reference="lobar pneumonia")])  # -> [Verdict]
"""

from medix.judge.core import Judge
from medix.judge.identity import identity_key, judge_identity
from medix.judge.types import JudgeRequest, Verdict

__all__ = ["Judge", "JudgeRequest", "Verdict", "identity_key", "judge_identity"]
