"""Energy accounting on hand-checkable models, and on the spiking LMs."""

import math

import pytest
import torch

from speak.lm.energy import ENERGY_CONSTANTS, is_spike_tensor, measure_energy, tokenizer_scan_energy
from speak.lm.spiking.spikegpt import SpikeGPT, SpikeGPTConfig


class _Wrap(torch.nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, x):
        return self.lin(x)


def test_one_linear_with_known_spike_input_exact_counts():
    m = _Wrap(torch.nn.Linear(4, 3))
    x = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])  # [1, 2, 4]: 3 spikes
    rep = measure_energy(m, x)
    (layer,) = rep.layers
    assert layer.spiking and layer.macs == 0 and layer.acs == 3 * 3
    assert layer.firing_rate == pytest.approx(3 / 8)
    assert rep.total_pj == pytest.approx(9 * 0.9)
    assert rep.pj_per_token == pytest.approx(9 * 0.9 / 8)  # ids.numel() of the input passed
    assert rep.mean_firing_rate == pytest.approx(3 / 8)
    # ternary alpha * {-1, 0, 1}
    rep = measure_energy(m, torch.tensor([[0.37, -0.37, 0.0, 0.37]]), "45nm-int8")
    assert rep.layers[0].acs == 3 * 3 and rep.total_pj == pytest.approx(9 * ENERGY_CONSTANTS["45nm-int8"][1])
    # dense input: MACs = numel * out_features
    rep = measure_energy(m, torch.tensor([[0.5, -0.2, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0]]))
    assert rep.layers[0].macs == 8 * 3 and rep.layers[0].acs == 0 and not rep.layers[0].spiking
    assert rep.total_pj == pytest.approx(24 * 4.6)
    assert math.isnan(rep.mean_firing_rate)


def test_is_spike_tensor():
    assert is_spike_tensor(torch.tensor([0.0, 1.0, 1.0]))
    assert is_spike_tensor(torch.tensor([-2.5, 0.0, 2.5]))
    assert is_spike_tensor(torch.zeros(3))
    assert not is_spike_tensor(torch.tensor([0.0, 1.0, 2.0]))
    assert not is_spike_tensor(torch.tensor([0.5, -0.25]))


def test_embedding_and_multiple_calls_accumulate():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 6)
            self.lin = torch.nn.Linear(6, 5, bias=False)

        def forward(self, ids):
            h = (self.emb(ids) > 0).float()  # spikes
            return self.lin(h) + self.lin(self.emb(ids))  # one spike call, one dense call

    m = M()
    ids = torch.tensor([[1, 2, 3]])
    rep = measure_energy(m, ids)
    by = {l.name: l for l in rep.layers}
    assert by["emb"].acs == 2 * 3 * 6 and by["emb"].calls == 2
    h = (m.emb(ids) > 0).float()
    assert by["lin"].acs == int((h != 0).sum()) * 5
    assert by["lin"].macs == 3 * 6 * 5 and by["lin"].calls == 2 and not by["lin"].spiking
    e_mac, e_ac = ENERGY_CONSTANTS["45nm-fp32"]
    assert rep.total_pj == pytest.approx(e_mac * rep.total_macs + e_ac * rep.total_acs)


def test_spikegpt_spike_inputs_has_no_macs_and_branch_placement_is_dense():
    torch.manual_seed(0)
    ids = torch.randint(0, 30, (2, 16))
    m = SpikeGPT(SpikeGPTConfig(vocab_size=30, d_model=16, n_layers=2, spike_inputs=True))
    rep = measure_energy(m, ids)
    assert rep.total_macs == 0 and rep.total_acs > 0
    assert all(l.spiking for l in rep.layers)
    assert 0 < rep.mean_firing_rate < 1
    dense = measure_energy(SpikeGPT(SpikeGPTConfig(vocab_size=30, d_model=16, n_layers=2)), ids)
    lin = [l for l in dense.layers if l.kind == "linear"]
    assert all(not l.spiking for l in lin) and dense.total_macs == sum(l.macs for l in lin)
    assert rep.total_pj < dense.total_pj


def test_tokenizer_scan_energy():
    rep = tokenizer_scan_energy(1000, n_spikes=200)
    assert rep.total_macs == 0
    assert rep.total_acs == 1000 + 1000 + 1000 + 200  # current lookup, mask lookup, integration, resets
    assert rep.total_pj == pytest.approx(3200 * 0.9)
    assert rep.pj_per_token == pytest.approx(3.2 * 0.9)
    assert rep.mean_firing_rate == pytest.approx(0.2)
    assert tokenizer_scan_energy(10, with_mask_lookup=False, count_threshold_compare=True).total_acs == 30
    with pytest.raises(KeyError):
        tokenizer_scan_energy(10, constants="7nm-magic")
