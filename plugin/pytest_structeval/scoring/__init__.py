"""Scoring as upstream StructEval-T does it: extract -> parse -> check paths -> score.

Pure functions over text; nothing here imports pytest or vLLM, and nothing of ours but
``tasks``. ``score_task(task, generation)`` is the entry point.
"""

from .score import TaskScore, score_task

__all__ = ["TaskScore", "score_task"]
