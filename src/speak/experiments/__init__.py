"""The paper's experiments as commands: Table 1 (``compare``), Tables 3 and 5 (``ablate``), Table 4
(``efficiency``), with Markdown / JSON / HTML reports and plots (see docs/experiments.md)."""

from speak.experiments.runner import ABLATION_VARIANTS, BASE_METHODS, resolve_method, run_training

__all__ = ["ABLATION_VARIANTS", "BASE_METHODS", "resolve_method", "run_training"]
