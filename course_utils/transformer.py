"""A Transformer decoder layer and a Vision Transformer's patch embedding, built from the
course's layers: attention (attention.py), layer norm, affine and ReLU.

Shapes: x (N, T, D) sequences of D-wide vectors. The decoder layer is the original
post-norm one (Vaswani et al., 2017), as in CS231n's captioning Transformer:

    x = LN1(x + SelfAttention(x, causal mask))
    x = LN2(x + CrossAttention(x, memory))
    x = LN3(x + W2 relu(W1 x + b1) + b2)

Every `*_forward` returns `(out, cache)`; the matching `*_backward(dout, cache)` is right
below it.
"""
from __future__ import annotations

from .attention import multihead_attention_backward, multihead_attention_forward
from .backend import array_module


def layernorm_last_forward(x, gamma, beta, eps=1e-5):
    """Layer norm over the last axis of x (any leading shape); gamma, beta (D,).
    Returns (out, cache), cache = (xhat, gamma, std)."""
    xp = array_module(x)
    mean = x.mean(axis=-1, keepdims=True)
    std = xp.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_last_backward(dout, cache):
    """Backward of layernorm_last_forward: dx, dgamma, dbeta. With g = dout * gamma,
    dx = (g - mean(g) - xhat * mean(g * xhat)) / std, means over the last axis."""
    xhat, gamma, std = cache
    lead = tuple(range(dout.ndim - 1))
    dgamma = (dout * xhat).sum(axis=lead)
    dbeta = dout.sum(axis=lead)
    g = dout * gamma
    dx = (g - g.mean(axis=-1, keepdims=True)
          - xhat * (g * xhat).mean(axis=-1, keepdims=True)) / std
    return dx, dgamma, dbeta


def _rows(a):
    """Every position as a row: (..., K) -> (positions, K)."""
    return a.reshape(-1, a.shape[-1])


def feedforward_forward(x, W1, b1, W2, b2):
    """The position-wise network relu(x W1 + b1) W2 + b2 on the last axis. Returns
    (out, cache)."""
    hidden = x @ W1 + b1
    active = hidden * (hidden > 0)
    return active @ W2 + b2, (x, W1, W2, hidden, active)


def feedforward_backward(dout, cache):
    """Backward of feedforward_forward: dx, dW1, db1, dW2, db2."""
    x, W1, W2, hidden, active = cache
    dW2 = _rows(active).T @ _rows(dout)
    db2 = _rows(dout).sum(axis=0)
    dhidden = (dout @ W2.T) * (hidden > 0)
    dW1 = _rows(x).T @ _rows(dhidden)
    db1 = _rows(dhidden).sum(axis=0)
    return dhidden @ W1.T, dW1, db1, dW2, db2


ATTENTION_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


def _sub(params, prefix):
    return {k: params[prefix + k] for k in ATTENTION_KEYS}


def decoder_layer_forward(x, memory, params, num_heads, mask=None):
    """One post-norm Transformer decoder layer (see the module docstring).

    x: (N, T, D) the sequence so far; memory: (N, S, D) what it attends to (image features).
    params: self-attention 'self_Wq' ... 'self_bo', cross-attention 'cross_Wq' ...
    'cross_bo', layer norms 'ln1_gamma', 'ln1_beta', 'ln2_*', 'ln3_*' (D,), feed-forward
    'ff_W1' (D, F), 'ff_b1' (F,), 'ff_W2' (F, D), 'ff_b2' (D,).
    mask: the self-attention mask, e.g. causal_mask(T).
    Returns (out, cache), out (N, T, D).
    """
    p = params
    a, self_cache = multihead_attention_forward(x, x, _sub(p, "self_"), num_heads, mask)
    x1, ln1 = layernorm_last_forward(x + a, p["ln1_gamma"], p["ln1_beta"])
    c, cross_cache = multihead_attention_forward(x1, memory, _sub(p, "cross_"), num_heads)
    x2, ln2 = layernorm_last_forward(x1 + c, p["ln2_gamma"], p["ln2_beta"])
    f, ff_cache = feedforward_forward(x2, p["ff_W1"], p["ff_b1"], p["ff_W2"], p["ff_b2"])
    out, ln3 = layernorm_last_forward(x2 + f, p["ln3_gamma"], p["ln3_beta"])
    return out, (self_cache, ln1, cross_cache, ln2, ff_cache, ln3)


def decoder_layer_backward(dout, cache):
    """Backward of decoder_layer_forward: (dx, dmemory, grads), grads with params' keys.
    Each residual sum passes its gradient to both of its terms."""
    self_cache, ln1, cross_cache, ln2, ff_cache, ln3 = cache
    grads = {}
    ds3, grads["ln3_gamma"], grads["ln3_beta"] = layernorm_last_backward(dout, ln3)
    dx2_ff, grads["ff_W1"], grads["ff_b1"], grads["ff_W2"], grads["ff_b2"] = \
        feedforward_backward(ds3, ff_cache)
    dx2 = ds3 + dx2_ff
    ds2, grads["ln2_gamma"], grads["ln2_beta"] = layernorm_last_backward(dx2, ln2)
    dx1_q, dmemory, cross = multihead_attention_backward(ds2, cross_cache)
    dx1 = ds2 + dx1_q
    ds1, grads["ln1_gamma"], grads["ln1_beta"] = layernorm_last_backward(dx1, ln1)
    dx_q, dx_kv, self_ = multihead_attention_backward(ds1, self_cache)
    grads.update({"cross_" + k: v for k, v in cross.items()})
    grads.update({"self_" + k: v for k, v in self_.items()})
    return ds1 + dx_q + dx_kv, dmemory, grads


def patchify(images, patch):
    """(N, C, H, W) images -> (N, (H/P)(W/P), C*P*P) patches, row by row of patches, each
    flattened channel-major. H and W must be multiples of patch."""
    N, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError(f"patchify: H = {H} and W = {W} must be multiples of the patch size "
                         f"{patch}.")
    gh, gw = H // patch, W // patch
    x = images.reshape(N, C, gh, patch, gw, patch).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(N, gh * gw, C * patch * patch)


def unpatchify(patches, shape, patch):
    """The inverse of patchify (also its backward: patchify only moves numbers)."""
    N, C, H, W = shape
    gh, gw = H // patch, W // patch
    x = patches.reshape(N, gh, gw, C, patch, patch).transpose(0, 3, 1, 4, 2, 5)
    return x.reshape(N, C, H, W)


def patch_embed_forward(images, W, b, cls_token, pos, patch):
    """A ViT's input: linear embedding of each patch, a learned class token in front, and
    learned position codes added. images (N, C, H, W); W (C*P*P, D); b (D,); cls_token (D,);
    pos (1 + (H/P)(W/P), D). Returns (out, cache), out (N, 1 + (H/P)(W/P), D)."""
    xp = array_module(images, W)
    patches = patchify(images, patch)
    tokens = patches @ W + b
    N, _, D = tokens.shape
    cls = xp.broadcast_to(cls_token, (N, 1, D))
    out = xp.concatenate([cls, tokens], axis=1) + pos
    return out, (images.shape, patches, W, patch)


def patch_embed_backward(dout, cache):
    """Backward of patch_embed_forward: dimages, dW, db, dcls_token, dpos."""
    shape, patches, W, patch = cache
    dpos = dout.sum(axis=0)
    dcls = dout[:, 0].sum(axis=0)
    dtokens = dout[:, 1:]
    dW = patches.reshape(-1, patches.shape[-1]).T @ dtokens.reshape(-1, dtokens.shape[-1])
    db = dtokens.sum(axis=(0, 1))
    dimages = unpatchify(dtokens @ W.T, shape, patch)
    return dimages, dW, db, dcls, dpos
