"""A few optimisation steps on a tiny batch: the parts train with frozen early layers."""

from __future__ import annotations

import torch

from vgloc.models import GeoLocalizationModel, freeze_early_layers

__all__ = ["check_trains"]


def check_trains(spec: str, size: int, steps: int = 2) -> GeoLocalizationModel:
    """Freeze the early backbone layers, run ``steps`` small SGD steps that push the descriptors
    of 4 images apart, and check the frozen parameters never change nor get a gradient,
    every other parameter gets a gradient, and a small gradient step lowers the loss (the
    gradients are right; longer runs at a fixed rate may oscillate on 4 random images)."""
    torch.manual_seed(0)
    model = GeoLocalizationModel(spec).train()
    frozen_paths = freeze_early_layers(model)
    assert frozen_paths
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert frozen and trainable
    opt = torch.optim.SGD(trainable, lr=1e-3)
    x = torch.randn(4, 3, size, size)
    losses = []
    for _ in range(steps):
        d = model(x)
        assert d.shape == (4, model.descriptor_dim)
        sim = d @ d.T
        loss = sim.triu(diagonal=1).sum()  # mean off-diagonal similarity, up to a constant
        opt.zero_grad()
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient reaches {missing[:5]}"
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[1] < losses[0], losses
    for name, p in model.named_parameters():
        if name in frozen:
            assert p.grad is None and torch.equal(p, frozen[name]), name
    return model
