"""The book's chapter-7 Transformer classifier: frozen pretrained word embeddings, sinusoidal
positions, two pre-LayerNorm blocks with single-head attention and a 1024-wide feed-forward
layer (dropout 0.1), and a linear classifier on the first (``<cls>``) token.

Attention is torch's ``nn.MultiheadAttention`` with one head, which also returns the weights
the model card visualises.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from zooflow.data.tokenize import PAD


def sinusoid_positions(length: int, dim: int) -> torch.Tensor:
    """The (length, dim) sinusoidal position table of Vaswani et al. (2017)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class EncoderBlock(nn.Module):
    """Pre-LayerNorm: x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, dim: int, feed_forward: int = 1024, dropout: float = 0.1):
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads=1, dropout=dropout, batch_first=True)
        self.norm_feed_forward = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, feed_forward), nn.ReLU(), nn.Dropout(dropout),
                                          nn.Linear(feed_forward, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.norm_attention(x)
        attended, weights = self.attention(normed, normed, normed, key_padding_mask=padding, need_weights=True)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))
        return x, weights


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size: int, dim: int, max_length: int, num_classes: int, blocks: int = 2,
                 feed_forward: int = 1024, dropout: float = 0.1, vectors: np.ndarray | None = None):
        super().__init__()
        if vectors is not None:
            # The book freezes the pretrained vectors; the optimizer's groups decide that here.
            self.embedding = nn.Embedding.from_pretrained(torch.as_tensor(vectors), freeze=False, padding_idx=PAD)
        else:
            self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
            # Learned from scratch: std dim^-1/2, so that after the sqrt(dim) scale below a token
            # starts at the positions' unit scale (Vaswani et al.). torch's N(0, 1) would start
            # every token at norm ~dim, and a word seen once in training would keep a large
            # random vector that drowns the words the model did learn.
            nn.init.normal_(self.embedding.weight, 0.0, dim ** -0.5)
            with torch.no_grad():
                self.embedding.weight[PAD].zero_()
        self.scale = math.sqrt(dim)
        self.register_buffer("positions", sinusoid_positions(max_length, dim), persistent=False)
        self.blocks = nn.ModuleList(EncoderBlock(dim, feed_forward, dropout) for _ in range(blocks))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor, return_attention: bool = False):
        padding = ids == PAD
        x = self.embedding(ids) * self.scale + self.positions[: ids.shape[1]]
        attention = []
        for block in self.blocks:
            x, weights = block(x, padding)
            attention.append(weights.unsqueeze(1))  # (batch, heads=1, query, key)
        logits = self.head(x[:, 0])
        return (logits, attention) if return_attention else logits


def param_groups(model: TransformerClassifier) -> dict[str, list[nn.Parameter]]:
    """``embedding`` (frozen in the book), ``encoder`` (the blocks) and ``head``."""
    return {"embedding": list(model.embedding.parameters()), "encoder": list(model.blocks.parameters()),
            "head": list(model.head.parameters())}
