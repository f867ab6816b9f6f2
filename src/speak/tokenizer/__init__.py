"""The SPEAK tokenizer (paper Eq. 2-11): heads T and C around the neuron, lookup inference, the artifact."""

from speak.tokenizer.config import TokenizerConfig
from speak.tokenizer.model import SpeakTokenizerNet, TokenizerOutput
from speak.tokenizer.pretrained import SpeakTokenizer, default_tokenizer_dir

__all__ = ["TokenizerConfig", "SpeakTokenizerNet", "TokenizerOutput", "SpeakTokenizer", "default_tokenizer_dir"]
