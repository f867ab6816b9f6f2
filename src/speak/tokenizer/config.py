"""TokenizerConfig: every hyperparameter of the SPEAK tokenizer in one typed place (paper App. C; SPEC section 3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from speak.errors import SpeakError
from speak.neuron.modes import ResetMode

ENCODERS = ("char-mlp", "char-mlp-2", "char-ngram", "features")
LINEAR1 = ("linear", "mlp")


@dataclass
class TokenizerConfig:
    """The tokenizer T = LIF o Linear1 o ContextEncoder (Eq. 2) and C = Linear2 o ContextEncoder (Eq. 7).

    encoder: `char-mlp` (embedding -> Linear -> LayerNorm -> GELU, per character; the standalone setting),
             `char-mlp-2` (two such blocks), `char-ngram` (the per-character block plus hashed embeddings of the
             n-grams of orders 2..`ngram_order` ending at t, `ngram_buckets` rows each, and with
             `ngram_lookahead` k > 0 those ending up to k characters later (then no longer causal: standalone
             use only); still a table lookup at inference; not in the paper), or `features` (an outer model's
             hidden states, e.g. the hourglass pre-layers, are the encoder: the GTok setting; `feature_dim` is
             their width).
    linear1: `linear` (one Linear to the current) or `mlp` (DTP's boundary MLP d -> 4d -> GELU -> 1); `tanh`
             squashes the current into (-1, 1) (Table 7: Linear + tanh is best standalone).
    """

    vocab_size: int
    encoder: str = "char-mlp"
    char_dim: int = 128
    ngram_order: int = 3
    ngram_buckets: int = 16384
    ngram_lookahead: int = 0
    feature_dim: int = 0
    linear1: str = "linear"
    tanh: bool = True
    theta: float = 0.8
    u_th: float = 1.0
    u_reset: float = 0.0
    gamma: float = 1.0
    delta: float = 1.0
    surrogate_alpha: float = 4.0
    reset_mode: str = ResetMode.ENTROPY_AWARE.value

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One clear SpeakError for the first invalid field."""
        if self.vocab_size < 2:
            raise SpeakError(f"tokenizer config: vocab_size must be >= 2, got {self.vocab_size}")
        if self.encoder not in ENCODERS:
            raise SpeakError(f"tokenizer config: unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        if self.linear1 not in LINEAR1:
            raise SpeakError(f"tokenizer config: unknown linear1 {self.linear1!r}; valid: {', '.join(LINEAR1)}")
        if self.encoder == "features" and self.feature_dim <= 0:
            raise SpeakError("tokenizer config: encoder 'features' needs feature_dim > 0")
        if self.encoder != "features" and self.char_dim <= 0:
            raise SpeakError(f"tokenizer config: char_dim must be > 0, got {self.char_dim}")
        if self.encoder == "char-ngram":
            buckets = self.ngram_buckets
            if self.ngram_order < 2 or buckets < 1 or buckets & (buckets - 1) or self.ngram_lookahead < 0:
                raise SpeakError(f"tokenizer config: char-ngram needs ngram_order >= 2, ngram_buckets a power of two "
                                 f"and ngram_lookahead >= 0, got {self.ngram_order}, {buckets} and "
                                 f"{self.ngram_lookahead}")
            if self.linear1 != "linear":
                raise SpeakError("tokenizer config: char-ngram needs linear1 'linear' (table-lookup inference sums "
                                 "per-n-gram currents)")
        if not 0.0 <= self.theta <= 1.0:
            raise SpeakError(f"tokenizer config: theta must lie in [0, 1], got {self.theta}")
        try:
            ResetMode.parse(self.reset_mode)
        except ValueError as err:
            raise SpeakError(f"tokenizer config: {err}") from None

    @property
    def hidden_dim(self) -> int:
        """Width of the ContextEncoder's output."""
        return self.feature_dim if self.encoder == "features" else self.char_dim

    @property
    def per_character(self) -> bool:
        """True when I_t and e_t depend on c_t alone, so inference can be a table lookup (SPEC section 3)."""
        return self.encoder in ("char-mlp", "char-mlp-2")

    @property
    def table_lookup(self) -> bool:
        """True when inference can run from lookup tables: per-character or hashed n-gram encoders."""
        return self.encoder.startswith("char-")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "TokenizerConfig":
        if not isinstance(data, dict):
            raise SpeakError(f"tokenizer config: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpeakError(f"tokenizer config: unknown key(s) {', '.join(unknown)}")
        if "vocab_size" not in data:
            raise SpeakError("tokenizer config: missing key vocab_size")
        try:
            return cls(**data)
        except TypeError as err:
            raise SpeakError(f"tokenizer config: {err}") from None
