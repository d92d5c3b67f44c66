"""CaptioningRNN: image features in, a caption (word indices) out."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..layers import affine_backward, affine_forward
from ..rnn_layers import (lstm_backward, lstm_forward, lstm_step_forward, rnn_backward,
                          rnn_forward, rnn_step_forward, temporal_affine_backward,
                          temporal_affine_forward, temporal_softmax_loss,
                          word_embedding_backward, word_embedding_forward)
from .base import Model

SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")


class CaptioningRNN(Model):
    """An image-captioning recurrent network (vanilla RNN or LSTM).

    Pipeline for features (N, D) and captions (N, T + 1):
        h0 = features @ W_proj + b_proj                       initial hidden state (N, H)
        x = W_embed[captions[:, :-1]]                         word vectors (N, T, W)
        h = rnn_forward / lstm_forward(x, h0, Wx, Wh, b)      hidden states (N, T, H)
        scores = h @ W_vocab + b_vocab                        (N, T, V)
        loss = temporal_softmax_loss(scores, captions[:, 1:], mask = captions[:, 1:] != <NULL>)
    Training uses teacher forcing: the input at step t is the true word t, the target word
    t + 1. Parameters: W_proj (D, H), b_proj (H,), W_embed (V, W), Wx (W, kH), Wh (H, kH),
    b (kH,), W_vocab (H, V), b_vocab (V,), with k = 1 for 'rnn' and 4 for 'lstm'.

    word_to_idx: dict word -> index in [0, V); must contain <NULL>, <START> and <END>.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32, seed=None):
        """Matrices ~ N(0, 1 / fan_in) (the embedding N(0, 0.01^2)), biases zero."""
        if cell_type not in ("rnn", "lstm"):
            raise ValueError(f"CaptioningRNN: cell_type must be 'rnn' or 'lstm', "
                             f"got {cell_type!r}.")
        missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
        if missing:
            raise ValueError(f"CaptioningRNN: word_to_idx lacks the special tokens {missing}.")
        V = len(word_to_idx)
        if sorted(word_to_idx.values()) != list(range(V)):
            raise ValueError("CaptioningRNN: word_to_idx must map the V words onto 0..V-1.")
        self.cell_type, self.dtype = cell_type, dtype
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null, self._start, self._end = (word_to_idx[t] for t in SPECIAL_TOKENS)
        self.input_dim = input_dim

        rng = backend.default_rng(seed)
        xp = backend.xp
        k = 4 if cell_type == "lstm" else 1
        D, W, H = input_dim, wordvec_dim, hidden_dim

        def randn(*shape, fan_in):
            return backend.randn(rng, *shape, dtype=dtype, scale=1 / math.sqrt(fan_in))

        self.params = {
            "W_proj": randn(D, H, fan_in=D),
            "b_proj": xp.zeros(H, dtype=dtype),
            "W_embed": backend.randn(rng, V, W, dtype=dtype, scale=0.01),
            "Wx": randn(W, k * H, fan_in=W),
            "Wh": randn(H, k * H, fan_in=H),
            "b": xp.zeros(k * H, dtype=dtype),
            "W_vocab": randn(H, V, fan_in=H),
            "b_vocab": xp.zeros(V, dtype=dtype),
        }

    def _check_features(self, method, features):
        if features.ndim != 2 or features.shape[1] != self.input_dim or \
                not np.issubdtype(features.dtype, np.floating):
            raise ValueError(f"CaptioningRNN.{method}: features must be floating point of shape "
                             f"(N, {self.input_dim}); got {tuple(features.shape)}, "
                             f"{features.dtype}.")

    # student-writes: assignment3/rnn_captioning
    def loss(self, features, captions):
        """Teacher-forced training loss and gradients.

        features: (N, D) image features; captions: integer (N, T + 1), each starting with
        <START> and padded with <NULL> (padding contributes no loss).
        Returns (loss, grads) with grads keyed like self.params.
        """
        self._check_features("loss", features)
        if captions.ndim != 2 or captions.shape[0] != features.shape[0] or captions.shape[1] < 2:
            raise ValueError(f"CaptioningRNN.loss: captions must be (N, T + 1) with T >= 1 and "
                             f"N = {features.shape[0]}; got shape {tuple(captions.shape)}.")
        features = features.astype(self.dtype, copy=False)
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        p = self.params

        h0, proj_cache = affine_forward(features, p["W_proj"], p["b_proj"])
        x, embed_cache = word_embedding_forward(captions_in, p["W_embed"])
        sequence_forward = lstm_forward if self.cell_type == "lstm" else rnn_forward
        h, seq_cache = sequence_forward(x, h0, p["Wx"], p["Wh"], p["b"])
        scores, vocab_cache = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, vocab_cache)
        sequence_backward = lstm_backward if self.cell_type == "lstm" else rnn_backward
        dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = sequence_backward(dh, seq_cache)
        grads["W_embed"] = word_embedding_backward(dx, embed_cache)
        _, grads["W_proj"], grads["b_proj"] = affine_backward(dh0, proj_cache)
        return loss, grads

    # student-writes: assignment3/rnn_captioning, assignment3/lstm_captioning
    def sample(self, features, max_length=30):
        """Greedy decoding: start from <START>, feed back the most likely word each step.

        features: (N, D). Returns integer captions (N, max_length): the words after <START>.
        Once a caption has produced <END>, its later positions are <NULL>. Everything stays
        on the features' backend: no per-step host transfer.
        """
        self._check_features("sample", features)
        if max_length < 1:
            raise ValueError(f"CaptioningRNN.sample: max_length must be >= 1, got {max_length}.")
        xp = backend.array_module(features)
        features = features.astype(self.dtype, copy=False)
        p = self.params
        N = features.shape[0]
        h, _ = affine_forward(features, p["W_proj"], p["b_proj"])
        c = xp.zeros_like(h)
        word = xp.full(N, self._start, dtype=xp.int64)
        done = xp.zeros(N, dtype=bool)
        captions = xp.full((N, max_length), self._null, dtype=xp.int64)
        for t in range(max_length):
            x = p["W_embed"][word]  # (N, W): the embedding lookup of one step
            if self.cell_type == "lstm":
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            else:
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            word = xp.argmax(h @ p["W_vocab"] + p["b_vocab"], axis=1)
            captions[:, t] = xp.where(done, self._null, word)
            done |= word == self._end
        return captions

    def decode(self, captions):
        """Integer captions (N, T) -> list of N strings, dropping special tokens (host side)."""
        rows = backend.to_numpy(captions)
        skip = {self._null, self._start}
        out = []
        for row in rows:
            words = []
            for idx in row:
                if idx == self._end:
                    break
                if idx not in skip:
                    words.append(self.idx_to_word[int(idx)])
            out.append(" ".join(words))
        return out
