"""Gradient caching: a contrastive loss over a batch larger than fits in memory.

Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"
(RepL4NLP 2021). A loss such as InfoNCE or the exhaustive DBL couples every item of the
batch, so it cannot be split into independent chunks; but the encoders can:

1. forward every chunk of every view without a graph, keeping only the embeddings;
2. compute the loss on the whole batch of (detached) embeddings and its gradient with
   respect to each embedding (parameters used inside the loss, e.g. an orientation
   head, get their gradients here);
3. re-forward each chunk with a graph and backpropagate the cached embedding gradients,
   which accumulates exactly the parameter gradients of one big pass.

Memory is one chunk's activations plus ``B x D`` embeddings. The random state is saved
before the first forward of each chunk and restored for its second, so dropout or random
layers draw the same numbers twice. Batch-norm layers in train mode see per-chunk
statistics (as in any chunked pass) and update their running statistics twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["cached_backward"]

Encoder = Callable[[Tensor], Tensor]


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def cached_backward(
    encoders: Sequence[Encoder],
    inputs: Sequence[Tensor],
    loss_fn: Callable[..., Tensor],
    chunk_size: int,
) -> Tensor:
    """Backpropagate ``loss_fn(*embeddings)`` through ``encoders`` chunk by chunk.

    Args:
        encoders: One callable per view (e.g. the street-view and aerial branches).
        inputs: One batch per view; ``inputs[k]`` goes through ``encoders[k]``.
        loss_fn: Takes the full embeddings of every view (in order) and returns a scalar.
        chunk_size: Items per forward pass (``>= 1``); at least the batch size gives
            one ordinary pass per view (still three steps, same result).

    Returns:
        The loss value, detached. Parameter ``.grad`` fields hold the gradients (added
        to what was there, as ``backward`` does); the caller steps the optimiser.

    Shape:
        - inputs[k]: ``(B_k, ...)``
        - embeddings passed to ``loss_fn``: ``(B_k, D_k)``
        - Output: ``()``
    """
    if len(encoders) != len(inputs) or not encoders:
        raise ValueError(f"need one input per encoder, got {len(encoders)} encoders and {len(inputs)} inputs")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunks = [x.split(chunk_size) for x in inputs]
    states: list[list[tuple[Tensor, Tensor | None]]] = []
    detached: list[Tensor] = []
    # Pass 1: embeddings without a graph.
    with torch.no_grad():
        for enc, view in zip(encoders, chunks, strict=True):
            outs, view_states = [], []
            for chunk in view:
                view_states.append(_rng_state(chunk.device))
                outs.append(enc(chunk))
            states.append(view_states)
            detached.append(torch.cat(outs).detach().requires_grad_())
    # Pass 2: the loss on the whole batch and its gradient per embedding.
    loss = loss_fn(*detached)
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
    loss.backward()
    # Pass 3: re-forward with a graph and push the cached gradients through.
    for enc, view, view_states, reps in zip(encoders, chunks, states, detached, strict=True):
        if reps.grad is None:
            continue  # the loss does not depend on this view
        grads = reps.grad.split(chunk_size)
        for chunk, state, grad in zip(view, view_states, grads, strict=True):
            saved = _rng_state(chunk.device)
            _set_rng_state(state, chunk.device)
            out = enc(chunk)
            _set_rng_state(saved, chunk.device)
            out.backward(gradient=grad.to(out.dtype))
    return loss.detach()
