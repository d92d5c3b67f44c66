"""Contrastive losses: SimCLR's NT-Xent (Chen et al., 2020) and CLIP's symmetric image-text
loss (Radford et al., 2021), each returning the loss and the gradient of its inputs.

Both compare L2-normalised embeddings by cosine similarity divided by a temperature tau, and
both are a softmax cross-entropy in which the right partner must win against everything
else in the batch. The gradient of the normalisation u = z / |z| is included:
dz = (du - u * sum(du * u)) / |z|, row by row.
"""
from __future__ import annotations

from .backend import array_module


def _normalize(z, xp):
    norm = xp.sqrt((z * z).sum(axis=1, keepdims=True))
    return z / norm, norm


def _normalize_backward(du, u, norm):
    return (du - u * (du * u).sum(axis=1, keepdims=True)) / norm


def _softmax_rows(s, xp):
    e = xp.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def nt_xent_loss(z, tau=0.5):
    """NT-Xent over 2N embeddings z (2N, D): rows i and i + N are two views of one image.

    Each row's cosine similarities to the other 2N - 1 rows, divided by tau, go through a
    softmax; the loss is the mean over rows of -log(probability of its partner). A row is
    never compared with itself.
    Returns (loss, dz).
    """
    M = z.shape[0]
    if z.ndim != 2 or M % 2 or M < 2:
        raise ValueError(f"nt_xent_loss: z must be (2N, D) with the two views stacked, got "
                         f"shape {z.shape}.")
    xp = array_module(z)
    u, norm = _normalize(z, xp)
    sim = (u @ u.T) / tau
    eye = xp.eye(M, dtype=bool)
    sim = xp.where(eye, -xp.inf, sim)
    partner = (xp.arange(M) + M // 2) % M
    probs = _softmax_rows(sim, xp)
    rows = xp.arange(M)
    loss = -xp.log(probs[rows, partner]).mean()
    dsim = probs.copy()
    dsim[rows, partner] -= 1.0
    dsim /= M                      # the diagonal is 0 already: exp(-inf)
    du = (dsim + dsim.T) @ u / tau
    return float(loss), _normalize_backward(du, u, norm)


def clip_loss(image_emb, text_emb, tau=0.07):
    """CLIP's symmetric loss for N matching (image, text) pairs: row n of each belongs
    together. logits = cos(image_i, text_j) / tau; loss = the mean of the cross-entropy of
    each image over the texts and of each text over the images.
    Returns (loss, dimage_emb, dtext_emb)."""
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"clip_loss: image_emb and text_emb must both be (N, D), got "
                         f"{image_emb.shape} and {text_emb.shape}.")
    xp = array_module(image_emb, text_emb)
    N = image_emb.shape[0]
    ui, ni = _normalize(image_emb, xp)
    ut, nt = _normalize(text_emb, xp)
    logits = ui @ ut.T / tau
    rows = xp.arange(N)
    p_img = _softmax_rows(logits, xp)        # each image over the texts
    p_txt = _softmax_rows(logits.T, xp)      # each text over the images
    loss = -(xp.log(p_img[rows, rows]).mean() + xp.log(p_txt[rows, rows]).mean()) / 2
    d_img, d_txt = p_img.copy(), p_txt.copy()
    d_img[rows, rows] -= 1.0
    d_txt[rows, rows] -= 1.0
    dlogits = (d_img + d_txt.T) / (2 * N)
    dui = dlogits @ ut / tau
    dut = dlogits.T @ ui / tau
    return float(loss), _normalize_backward(dui, ui, ni), _normalize_backward(dut, ut, nt)
