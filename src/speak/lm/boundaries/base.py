"""The boundary-source interface of the hourglass LM (ARCHITECTURE.md, "the seam").

A boundary source is an ``nn.Module`` that owns everything about one way of cutting characters into groups:

- ``Options``: its typed options dataclass (``model.boundary.<field>`` in a run's config);
- ``forward(chars [B, L], features [B, L, D]) -> BoundaryOutput``: ``features`` are the hourglass pre-layer outputs
  (causal), and ``hard[b, t] = 1`` means t closes its group; every source keeps the LM causal (its logits at t
  depend on characters <= t only): ``hard[:, t]`` depends on characters <= t only, as position t already reads the
  group it closes (DTP's upsampling, :mod:`speak.lm.pooling`);
- ``upsample(groups, out)``: the shortened outputs back at characters (default: the groups closed at or before t);
- ``aux_losses(out, lm_logits, targets, valid) -> {name: loss}``: its training losses besides L_LM;
- ``needs``: which per-character targets the training data stream must carry (:class:`Targets`).

The trainer, objective, run builder and CLI ask the source; none of them knows a source by name. Sources are
registered in :mod:`speak.lm.boundaries.registry`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.pooling import upsample
from speak.lm.boundaries.registry import DEFAULT

if TYPE_CHECKING:  # pragma: no cover
    from speak.tokenizer import TokenizerOutput

__all__ = [
    "BoundaryConfig",
    "BoundaryOutput",
    "BoundarySource",
    "SourceOptions",
    "Targets",
    "need_alphabet",
]


class Targets(enum.Enum):
    """Per-character boundary targets a source trains on (``batch.boundary_targets``)."""

    NONE = "characters only"  # nothing beyond the characters
    EXEMPLAR = "exemplar"  # a fixed exemplar segmentation of the train split (SentencePiece Unigram by default)
    PROXY = "proxy"  # the SPEAK proxy store, initialised from the exemplar and refined by MH (Eq. 13, 15, 16)


@dataclass
class BoundaryOutput:
    hard: Tensor  # [B, L] float in {0,1}; 1 = position t closes its group (may carry straight-through grads)
    logits: Tensor | None = None  # [B, L] boundary-predictor logits (dtp-*, magnet); None for rule-based sources
    tokenizer: "TokenizerOutput | None" = None  # spiking sources: current, u, s, v, mask_logits, mask
    script_ids: Tensor | None = None  # [B, L] per-script sources: the script of each position
    head_logits: Tensor | None = None  # [B, L, K] the encoder-BCE head's logits (training only; LearnedOptions)
    # a source's own tensors for its upsample / aux_losses (hnet: "probs" [B, L]; blt: "entropy_logits", "chars")
    extras: dict[str, Tensor] = dataclasses.field(default_factory=dict)


@dataclass
class SourceOptions:
    """Options common to every source (none). Subclass per source; each field is a ``model.boundary.<field>`` key."""

    def validate(self) -> None:
        """Raise a one-line SpeakError naming the first invalid option."""


class BoundarySource(nn.Module):
    """Base class. Class attributes describe the source to the rest of the system (set them in the subclass)."""

    name: ClassVar[str] = ""  # the registry name (``--boundary NAME``)
    method: ClassVar[str] = ""  # its experiment method name when it differs from ``name`` (see method_name)
    label: ClassVar[str] = ""  # display name in tables
    Options: ClassVar[type[SourceOptions]] = SourceOptions
    needs: ClassVar[Targets] = Targets.NONE
    shortens: ClassVar[bool] = True  # False: the hourglass never pools (vanilla)
    needs_alphabet: ClassVar[bool] = False  # True: the vocabulary's id -> character table must be given

    def __init__(self, opts: SourceOptions, d_model: int, vocab_size: int, alphabet: Sequence[str] | None):
        super().__init__()
        self.opts = opts

    @classmethod
    def method_name(cls) -> str:
        """The experiment method that trains this source with its defaults."""
        return cls.method or cls.name

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def upsample(self, groups: Tensor, out: BoundaryOutput) -> Tensor:
        """The shortened outputs [B, 1 + G, D] back at characters [B, L, D]. Default: position t reads the slot of
        the groups closed at or before t (:func:`speak.lm.pooling.upsample`); a source may smooth or scale it (hnet)."""
        return upsample(groups, out.hard)

    def aux_losses(self, out: BoundaryOutput, lm_logits: Tensor, targets: Tensor | None,
                   valid: Tensor) -> dict[str, Tensor]:
        """The source's losses besides L_LM, by name. ``lm_logits`` [B, L, V] (the LM's next-character logits),
        ``targets`` [B, L] (``batch.boundary_targets``; None when the stream has none), ``valid`` [B, L] bool
        (False at ``<pad>`` inputs, which every auxiliary loss masks out)."""
        return {}

    def tokenizer_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that count as the tokenizer's (``count_parameters``)."""
        return self.parameters()

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that exist but never take part in inference (excluded from every count)."""
        return iter(())

    def require_targets(self, targets: Tensor | None, like: Tensor) -> Tensor:
        """``targets`` on ``like``'s device with its [B, L] shape, or a SpeakError saying which targets are missing."""
        if targets is None:
            raise SpeakError(f"boundary source {self.name!r} needs {self.needs.value} targets in "
                             f"batch.boundary_targets")
        targets = targets.to(like.device)
        if targets.shape != like.shape[:2]:
            raise SpeakError(f"boundary_targets shape {tuple(targets.shape)} != inputs shape {tuple(like.shape[:2])}")
        return targets


def need_alphabet(name: str, alphabet: Sequence[str] | None, vocab_size: int) -> Sequence[str]:
    """The id -> character table, checked against the vocabulary size."""
    if alphabet is None:
        raise SpeakError(f"boundary source {name!r} needs the vocabulary's alphabet (HourglassConfig.alphabet)")
    if len(alphabet) != vocab_size:
        raise SpeakError(f"alphabet has {len(alphabet)} entries but vocab_size is {vocab_size}")
    return alphabet


def option_names(options: type[SourceOptions]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(options))


@dataclass(init=False)
class BoundaryConfig:
    """Which boundary source the hourglass uses, and that source's typed options.

    ``BoundaryConfig(name=NAME, **options)``: the keyword options are the fields of the source's ``Options``; an
    unknown one is a SpeakError listing the valid ones. ``options`` may also be given whole (an Options instance or a
    mapping, as :func:`dataclasses.asdict` writes it).
    """

    name: str = DEFAULT
    options: SourceOptions = dataclasses.field(default_factory=SourceOptions)

    def __init__(self, name: str = DEFAULT, options: SourceOptions | Mapping[str, Any] | None = None,
                 **flat: Any) -> None:
        from speak.lm.boundaries.registry import get_source

        self.name = name
        cls = get_source(name)
        given = dict(dataclasses.asdict(options)) if isinstance(options, SourceOptions) else dict(options or {})
        given.update(flat)
        valid = option_names(cls.Options)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise SpeakError(f"unknown option(s) {', '.join(unknown)} for boundary source {name!r} "
                             f"(valid: {', '.join(valid) or 'none'})")
        self.options = cls.Options(**given)

    @property
    def source(self) -> type[BoundarySource]:
        from speak.lm.boundaries.registry import get_source

        return get_source(self.name)

    def validate(self) -> None:
        self.options.validate()
