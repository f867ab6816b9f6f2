"""Reset modes of the SPEAK neuron (paper Eq. 1, 10-11; ablations of Table 3).

Every mode is a (hard-reset mask, theta) pair fed to the one scan of Eq. 10: the uniform modes of the
ablations are constant masks and thetas, the entropy-aware mode uses the contextual-boundary masks m (Eq. 9).
"""

from __future__ import annotations

from enum import Enum

import torch


class ResetMode(str, Enum):
    """Named reset modes, usable as strings in configs."""

    ENTROPY_AWARE = "entropy-aware"  # hard where m = 1, theta-scaled soft elsewhere (SPEAK, Eq. 10)
    ALL_HARD = "all-hard"  # m = 1 everywhere
    ALL_SOFT = "all-soft"  # m = 0, theta = 1 (classic soft reset)
    NO_RESET = "no-reset"  # m = 0, theta = 0
    HARD_NO_RESET = "hard-no-reset"  # hard where m = 1, no reset elsewhere (theta = 0)

    @classmethod
    def parse(cls, value: "ResetMode | str") -> "ResetMode":
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown reset mode {value!r}; valid modes: {valid}") from None

    def resolve(
        self, mask: torch.Tensor | None, theta: float, shape: tuple[int, ...], device=None
    ) -> tuple[torch.Tensor | None, float]:
        """The (hard-reset mask, theta) that realise this mode; `mask` is the contextual-boundary mask m."""
        if self is ResetMode.ENTROPY_AWARE:
            return mask, theta
        if self is ResetMode.HARD_NO_RESET:
            return mask, 0.0
        if self is ResetMode.ALL_HARD:
            return torch.ones(shape, dtype=torch.bool, device=device), theta
        if self is ResetMode.ALL_SOFT:
            return None, 1.0
        return None, 0.0  # NO_RESET

    @property
    def uses_mask(self) -> bool:
        """Whether the contextual-boundary predictor's mask drives this mode (so L_reset trains something)."""
        return self in (ResetMode.ENTROPY_AWARE, ResetMode.HARD_NO_RESET)
