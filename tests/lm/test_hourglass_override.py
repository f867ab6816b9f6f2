"""HourglassLM.forward(chars, boundaries=...): given boundaries replace the boundary source's."""

import pytest
import torch

from speak.errors import SpeakError
from speak.lm.hourglass import HourglassConfig, HourglassLM


@pytest.mark.parametrize("source", ["dtp-unigram", "speak", "fixed"])
def test_given_boundaries_reproduce_the_sources_forward(source):
    torch.manual_seed(0)
    cfg = HourglassConfig.from_preset("cpu-tiny", vocab_size=12).with_boundary(source)
    model = HourglassLM(cfg).eval()
    chars = torch.randint(1, 12, (2, 24))
    with torch.no_grad():
        own = model(chars)
        given = model(chars, boundaries=own.boundary.hard)
        other = model(chars, boundaries=1.0 - own.boundary.hard)
    torch.testing.assert_close(given.logits, own.logits)
    assert not torch.allclose(other.logits, own.logits)
    with pytest.raises(SpeakError, match="shape of chars"):
        model(chars, boundaries=own.boundary.hard[:, :-1])
