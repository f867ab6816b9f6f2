import pytest
import torch

from speak.text.vocab import CharVocab
from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig

SAMPLE = "In the beginning God created the heavens and the earth.\nThe earth was formless and empty.\n"


@pytest.fixture
def sample_text() -> str:
    return SAMPLE


@pytest.fixture
def small_tokenizer() -> SpeakTokenizer:
    """A randomly initialised tokenizer whose currents are scaled so it actually spikes."""
    torch.manual_seed(0)
    vocab = CharVocab.build([SAMPLE])
    net = SpeakTokenizerNet(TokenizerConfig(vocab_size=len(vocab), char_dim=16))
    with torch.no_grad():
        net.linear1.weight.mul_(8.0)
        net.linear1.bias.fill_(0.4)
    return SpeakTokenizer(net, vocab, meta={"note": "test"})
