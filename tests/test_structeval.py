"""The StructEval-T evaluation suite.

pytest-structeval parametrizes both tests: ``test_preflight`` over the environment checks
(marker ``preflight``; they run first) and ``test_task`` over the selected tasks (markers per
output format and per kind). A task passes when its output scores 1.0; otherwise the failure
says why, in the scorer's words.
"""


def test_preflight(structeval_check_outcome):
    structeval_check_outcome.verify()


def test_task(structeval_outcome):
    structeval_outcome.verify()
