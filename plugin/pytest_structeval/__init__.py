"""pytest-structeval: evaluate a language model on StructEval-T from pytest.

Pipeline, one module per stage: tasks -> backend -> extract -> formats -> paths -> score ->
report -> gate. The pytest layer (``plugin``) only wires these together.
"""
