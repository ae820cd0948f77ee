#!/usr/bin/env python3
"""A PyTorch twin of wavspa's LRA sequence classifier, for checking and timing.

It builds the same model that wavspa's models::make_classifier builds from a model config
(architectures "transformer" and "wavspa" with the "ada" parametrization), with the same
parameter names and shapes, so that a wavspa checkpoint loads into it with
`load_state_dict(strict=True)`.

Two verbs:

  python3 bench/torch_step.py check DIR [--device cuda] [--sdpa]
      DIR holds what wavspa's bench_step --dump writes: config.json (the model config),
      model.safetensors (wavspa's state dict, float32) and batch.safetensors with
      `inputs` (int64 (B, N)), `labels` (int64 (B,)), and wavspa's own results for them in
      eval mode, float32 on the CPU: `logits` (B, C), `loss` (mean cross-entropy) and
      `grad_norm` (global L2 norm of every parameter gradient of that loss). This script
      loads the weights, computes the same three things in float32 with TF32 off and
      prints one line
          check <architecture> ok|FAILED max_abs_logit_diff=... loss_rel=... gradnorm_rel=...
      exiting with 1 on a mismatch (logits beyond atol 1e-4 + rtol 1e-3, or loss or
      gradient norm beyond 1e-3 relative).

  python3 bench/torch_step.py time --config FILE.json [--batch 32] [--len 2000] [--steps 20]
                                   [--warmup 5] [--precision fp32|bf16] [--sdpa] [--compile]
                                   [--device cuda] [--threads N]
      Times training steps (zero_grad, forward, cross-entropy, backward, AdamW step) on
      random tokens, in train mode with the config's dropout. fp32 runs with TF32 off;
      bf16 is the usual PyTorch mixed precision: float32 weights, forward and loss under
      torch.autocast(bfloat16). The last line of stdout is one JSON object with the median
      and minimum milliseconds per step and the peak allocated memory (MiB, 2^20 bytes).

  python3 bench/torch_step.py wavelet [--batch 32] [--len 2000] [--dim 128] [--wlen 16]
                                      [--levels 1] [--dtype fp32|bf16] [--compile]
      Times the wavelet path alone in this conv1d formulation, as tools/bench_wavelet times
      wavspa's: wavedec + waverec of a (batch, len, dim) signal (transposed to conv1d's
      layout and back, as the twin's block does), per-channel filters, forward and backward
      with the filter gradient; the same minimum traffic and a clone's copy bandwidth.
      --compile wraps the model in torch.compile (default mode) before the warm-up steps,
      which then include compilation; the impl is reported with a "+compile" suffix.

Why `check` exists: a time comparison between wavspa and PyTorch says something only if
both run the same computation. Reproducing wavspa's logits from its own weights (forward)
and its gradient norm (backward through every parameter, the wavelet filters included)
shows that this file is that computation, not merely something of the same size.

Attention is written out as matmul + softmax (the "eager" baseline, as wavspa computes it);
--sdpa swaps in torch.nn.functional.scaled_dot_product_attention, reported as its own row.

Everything runs on the CPU too (--device cpu), for reading and testing without a GPU.
Other messages go to stderr; stdout carries only the result line.
"""

import argparse
import functools
import json
import math
import os
import re
import statistics
import sys
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- the model config (models/config.{h,cpp}) ----------------------------------------------

# Every key of wavspa's ModelConfig with its default. wavspa writes all of them when it dumps
# a config, so all are accepted here; the ones this twin cannot reproduce are refused by
# check_supported. Keys wavspa does not know are refused, as wavspa refuses them.
CONFIG_DEFAULTS = {
    "architecture": "transformer",
    "attention": "full",
    "vocab_size": 0,
    "num_classes": 0,
    "max_len": 0,
    "emb_dim": 64,
    "num_heads": 1,
    "num_layers": 2,
    "qkv_dim": 64,
    "mlp_dim": 128,
    "classifier_mlp": 128,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "positions": "sinusoidal",
    "pooling": "cls",
    "mask_padding": True,
    "dual": False,
    "performer_features": 64,
    "linformer_k": 64,
    "local_window": 32,
    "local_global": 1,
    "parametrization": "ada",
    "levels": 1,
    "wlen": 16,
    "wavelet_mode": "periodization",
    "pre_mlp_norm": False,
    "seed": 0,
}


def load_config(path):
    with open(path) as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    unknown = sorted(set(raw) - set(CONFIG_DEFAULTS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys: {sorted(CONFIG_DEFAULTS)}")
    config = types.SimpleNamespace(**{**CONFIG_DEFAULTS, **raw})
    check_supported(config, path)
    return config


def check_supported(c, where):
    def refuse(message):
        raise ValueError(f"{where}: {message}")

    if c.architecture not in ("transformer", "wavspa"):
        refuse(f"architecture '{c.architecture}' is not reproduced here; "
               "this twin knows 'transformer' and 'wavspa'")
    if c.attention != "full":
        refuse(f"attention '{c.attention}' is not reproduced here; only 'full'")
    if c.architecture == "wavspa":
        if c.parametrization != "ada":
            refuse(f"WavSpA parametrization '{c.parametrization}' is not reproduced here; only 'ada'")
        if c.wavelet_mode != "periodization":
            refuse(f"wavelet_mode '{c.wavelet_mode}' is not reproduced here; only 'periodization'")
        if c.wlen < 2 or c.wlen % 2 != 0:
            refuse(f"wlen must be even and >= 2, got {c.wlen}")
        if c.levels < 1:
            refuse(f"levels must be >= 1, got {c.levels}")
    if c.positions not in ("sinusoidal", "learned", "none"):
        refuse(f"positions '{c.positions}' is not one of sinusoidal, learned, none")
    if c.pooling not in ("cls", "mean", "max"):
        refuse(f"pooling '{c.pooling}' is not reproduced here; only cls, mean, max")
    if c.dual:
        refuse("dual encoders (retrieval) are not reproduced here")
    for key in ("vocab_size", "num_classes", "max_len", "emb_dim", "num_heads", "num_layers",
                "qkv_dim", "mlp_dim", "classifier_mlp"):
        if getattr(c, key) <= 0:
            refuse(f"'{key}' must be positive, got {getattr(c, key)}")
    if c.qkv_dim % c.num_heads != 0:
        refuse(f"qkv_dim {c.qkv_dim} must be divisible by num_heads {c.num_heads}")


# ---- layers (nn/layers.{h,cpp}, nn/attention.{h,cpp}) ---------------------------------------
#
# wavspa's Linear keeps W as (out, in) and computes x W^T + b, its LayerNorm has eps 1e-5,
# its GELU is the exact (erf) one, and its Embedding is a plain row lookup with no scaling:
# torch.nn's Linear, LayerNorm, GELU and Embedding defaults are the same layers, with the
# same parameter names (weight, bias) and the same initialisation, so they are used as is.


class MLP(nn.Module):
    """fc1 -> GELU (erf) -> Dropout -> fc2 -> Dropout."""

    def __init__(self, dim, hidden, dropout):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(F.gelu(self.fc1(x)))))


class MultiHeadSelfAttention(nn.Module):
    """wavspa's MultiHeadSelfAttention with its options as the factory sets them: a fused
    `qkv` projection (dim -> 3 qkv_dim; q, k, v are its three consecutive chunks), heads of
    qkv_dim / heads features, scores (q k^T) / sqrt(dh), dropout on the attention weights,
    and an `out` projection back to dim.

    keep: None, or a (B, N) bool tensor, False for padding keys that no query may see. wavspa
    gives masked scores the dtype's lowest finite value (so a row with nothing to see would
    average uniformly rather than give NaN); here the cls token is always visible, so no row
    is ever empty and -inf (what SDPA uses) gives the same numbers."""

    def __init__(self, dim, heads, qkv_dim, attention_dropout, sdpa):
        super().__init__()
        self.heads = heads
        self.qkv_dim = qkv_dim
        self.attention_dropout = attention_dropout
        self.sdpa = sdpa
        self.qkv = nn.Linear(dim, 3 * qkv_dim)
        self.out = nn.Linear(qkv_dim, dim)

    def forward(self, x, keep=None):
        B, N, _ = x.shape
        dh = self.qkv_dim // self.heads
        # (B, N, qkv_dim) -> (B, H, N, dh)
        q, k, v = (t.reshape(B, N, self.heads, dh).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        key_mask = None if keep is None else keep[:, None, None, :]  # (B, 1, 1, N)
        p = self.attention_dropout if self.training else 0.0
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))  # (B, H, N, N)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
            weights = F.dropout(scores.softmax(dim=-1), p, self.training)
            y = weights @ v
        return self.out(y.transpose(1, 2).reshape(B, N, self.qkv_dim))


class SinusoidalPositions(nn.Module):
    """Adds table[n, 2i] = sin(n / 10000^(2i / D)), table[n, 2i + 1] = cos(same angle).
    The table is computed in float64 and stored as float32, and it is a persistent buffer
    because wavspa saves it in its state dict (as `...positions.table`)."""

    def __init__(self, max_len, dim):
        super().__init__()
        n = torch.arange(max_len, dtype=torch.float64)[:, None]
        i = torch.arange(dim)
        angle = n / torch.pow(10000.0, (i - i % 2).to(torch.float64) / dim)
        table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
        self.register_buffer("table", table.to(torch.float32))

    def forward(self, x):
        return x + self.table[: x.shape[1]].to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds a learned (max_len, D) table, initialised N(0, 0.02^2)."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


# ---- the periodization wavelet transform (ops/wavelet.cpp) ----------------------------------
#
# Signals here are (B, D, n): conv1d's layout, D channels, each with its own filters. wavspa
# works on (B, n, D) but along the same axis with the same numbers.
#
# The bank. wavspa's Wavelet::orthogonal_from(dec_lo) derives, per channel,
#     rec_lo[k] = dec_lo[F-1-k],  rec_hi[k] = (-1)^k dec_lo[k],  dec_hi[k] = (-1)^(k+1) rec_lo[k],
# and its analysis correlates the extended signal with the *reversed* decomposition filters:
#     reversed dec_lo = rec_lo,   reversed dec_hi[k] = dec_hi[F-1-k] = (-1)^k dec_lo[k] = rec_hi[k]
# (F is even). So one tensor serves as both conv1d's weight for the analysis and
# conv_transpose1d's weight for the synthesis, its adjoint, as befits an orthogonal bank.
#
# Analysis (dwt, periodization): with n_even = n rounded up to even (an odd signal repeats
# its last sample), L = n_even / 2 and left = F/2 - 1,
#     xe[p] = x[min((p - left) mod n_even, n - 1)]            for p in [0, n_even + F - 2)
#     cA[o] = sum_k rec_lo[k] xe[2 o + k],  cD[o] = sum_k rec_hi[k] xe[2 o + k],  o in [0, L)
# (that is, cA[o] = sum_j dec_lo[j] x[(2 o + F/2 - j) mod n_even], PyWavelets' periodization).
# That is a gather followed by a stride-2 depthwise correlation, which is what conv1d computes.
#
# Synthesis (idwt, periodization), the adjoint of the analysis for a signal of length 2 L:
#     y[p] = sum_o rec_lo[p - 2 o] cA[o] + rec_hi[p - 2 o] cD[o]   for p in [0, 2 L + F - 2)
#     out[i] = sum of y[p] over the p with (p - left) mod 2 L = i  (the padding wraps around)
# conv_transpose1d with stride 2 computes y; index_add does the wrap.
# (On an H200, float32 and bfloat16, this beat two other formulations that were tried and
# dropped: a stride-1 polyphase conv1d, and unfold + matmul.)
#
# waverec: before each level an approximation one longer than the detail drops its last
# sample (PyWavelets' rule), and the result is cropped to the input's length at the end.


def wavelet_bank(dec_lo):
    """(F, D) per-channel decomposition low-pass -> (2 D, 1, F): weight row 2 c is channel c's
    rec_lo, row 2 c + 1 its rec_hi. Differentiable in dec_lo."""
    taps, D = dec_lo.shape
    signs = 1 - 2 * (torch.arange(taps, device=dec_lo.device) % 2)   # +1, -1, +1, ...
    rec_lo = dec_lo.flip(0)
    rec_hi = dec_lo * signs[:, None].to(dec_lo.dtype)
    return torch.stack([rec_lo, rec_hi]).permute(2, 0, 1).reshape(2 * D, 1, taps)


@functools.lru_cache(maxsize=None)
def analysis_source(n, taps, device):
    """For each extended sample p of a length-n signal, the sample it copies."""
    n_even, left = n + n % 2, taps // 2 - 1
    p = torch.arange(n_even + taps - 2, device=device)
    return ((p - left) % n_even).clamp(max=n - 1)


@functools.lru_cache(maxsize=None)
def synthesis_target(L, taps, device):
    """For each sample p of the unwrapped synthesis of L coefficients, where it lands."""
    p = torch.arange(2 * L + taps - 2, device=device)
    return (p - (taps // 2 - 1)) % (2 * L)


def dwt_periodization(x, bank):
    """One level: x (B, D, n) -> (cA, cD), each (B, D, ceil(n / 2))."""
    B, D, n = x.shape
    xe = x.index_select(2, analysis_source(n, bank.shape[-1], x.device))  # (B, D, n_even + F - 2)
    bands = F.conv1d(xe, bank, stride=2, groups=D)       # (B, 2 D, n_even / 2)
    bands = bands.view(B, D, 2, -1)
    return bands[:, :, 0], bands[:, :, 1]


def idwt_periodization(cA, cD, bank):
    """One level back: cA, cD (B, D, L) -> (B, D, 2 L)."""
    B, D, L = cA.shape
    coeffs = torch.stack([cA, cD], dim=2).reshape(B, 2 * D, L)   # channel 2 c + f, as the bank
    y = F.conv_transpose1d(coeffs, bank, stride=2, groups=D)      # (B, D, 2 L + F - 2)
    wrap = synthesis_target(L, bank.shape[-1], y.device)
    return y.new_zeros(B, D, 2 * L).index_add(2, wrap, y)


def wavedec(x, bank, levels):
    """[cA_levels, cD_levels, ..., cD_1], PyWavelets' order."""
    details = []
    for _ in range(levels):
        x, d = dwt_periodization(x, bank)
        details.append(d)
    return [x] + details[::-1]


def waverec(bands, bank, length):
    a = bands[0]
    for d in bands[1:]:
        if a.shape[-1] == d.shape[-1] + 1:
            a = a[..., : d.shape[-1]]
        a = idwt_periodization(a, d, bank)
    return a[..., :length]


def daubechies_dec_lo(order):
    """PyWavelets' db<order> dec_lo (float64), read from the table wavspa is built with,
    ops/wavelet_filters.inc. It only initialises the filters: `check` loads wavspa's own."""
    path = os.path.join(REPO_ROOT, "ops", "wavelet_filters.inc")
    pattern = re.compile(r'WAVSPA_WAVELET\("db%d",\s*\w+,\s*\{([^}]*)\}' % order)
    try:
        with open(path) as f:
            match = pattern.search(f.read())
    except OSError:
        match = None
    if match is None:
        print(f"torch_step: db{order} not found in {path}; WavSpA filters start random",
              file=sys.stderr)
        return torch.randn(2 * order, dtype=torch.float64) / math.sqrt(2 * order)
    return torch.tensor([float(v) for v in match.group(1).split(",")], dtype=torch.float64)


# ---- blocks (models/blocks.{h,cpp}) ----------------------------------------------------------


class TransformerBlock(nn.Module):
    """Pre-LayerNorm: x = x + Dropout(Attn(LN(x), keep)); x = x + MLP(LN(x))."""

    def __init__(self, c, sdpa):
        super().__init__()
        D = c.emb_dim
        self.norm1 = nn.LayerNorm(D)
        self.attn = MultiHeadSelfAttention(D, c.num_heads, c.qkv_dim, c.attention_dropout, sdpa)
        self.drop = nn.Dropout(c.dropout)
        self.norm2 = nn.LayerNorm(D)
        self.mlp = MLP(D, c.mlp_dim, c.dropout)

    def forward(self, x, keep):
        h = x + self.drop(self.attn(self.norm1(x), keep))
        return h + self.mlp(self.norm2(h))


class WavSpABlock(nn.Module):
    """WavSpA with learnable per-channel filters ("ada"):
        h = LN(x_in with padding rows zeroed)
        bands = wavedec(h) along the sequence, one attention per band (own weights, no mask)
        x = x_in + waverec(bands) cropped to N
        return x + MLP(Dropout(x))            (LN before the MLP only with pre_mlp_norm)
    `filters` is dec_lo per channel, (wlen, D), initialised to db(wlen / 2) in every channel.
    Bands are attributes band0 .. band<levels>, as wavspa names them."""

    def __init__(self, c, sdpa):
        super().__init__()
        D = c.emb_dim
        self.levels = c.levels
        self.norm = nn.LayerNorm(D)
        db = daubechies_dec_lo(c.wlen // 2).to(torch.float32)
        self.filters = nn.Parameter(db[:, None].expand(c.wlen, D).clone())
        for b in range(c.levels + 1):
            self.add_module(f"band{b}", MultiHeadSelfAttention(D, c.num_heads, c.qkv_dim,
                                                               c.attention_dropout, sdpa))
        self.drop = nn.Dropout(c.dropout)
        self.mlp_norm = nn.LayerNorm(D) if c.pre_mlp_norm else None
        self.mlp = MLP(D, c.mlp_dim, c.dropout)

    def forward(self, x_in, keep):
        N = x_in.shape[1]
        h = x_in if keep is None else x_in * keep[:, :, None].to(x_in.dtype)
        h = self.norm(h)
        bank = wavelet_bank(self.filters)
        bands = wavedec(h.transpose(1, 2), bank, self.levels)          # each (B, D, L)
        bands = [getattr(self, f"band{b}")(band.transpose(1, 2)).transpose(1, 2)
                 for b, band in enumerate(bands)]
        x = x_in + waverec(bands, bank, N).transpose(1, 2)
        y = self.mlp(self.drop(self.mlp_norm(x) if self.mlp_norm is not None else x))
        return x + y


# ---- the classifier (models/classifier.{h,cpp}, models/factory.cpp) -------------------------


class Encoder(nn.Module):
    """ids (B, N) -> embed [-> cls first] -> + positions -> Dropout -> blocks -> LN -> pool.
    Id 0 is padding when mask_padding is on: the blocks zero it (WavSpA) or hide it from
    attention (Transformer), and mean/max pooling skip it."""

    def __init__(self, c, sdpa):
        super().__init__()
        self.config = c
        D = c.emb_dim
        length = c.max_len + (1 if c.pooling == "cls" else 0)
        self.embed = nn.Embedding(c.vocab_size, D)
        if c.pooling == "cls":
            self.cls = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        else:
            self.cls = None
        if c.positions == "sinusoidal":
            self.positions = SinusoidalPositions(length, D)
        elif c.positions == "learned":
            self.positions = LearnedPositions(length, D)
        else:
            self.positions = None
        self.drop = nn.Dropout(c.dropout)
        block = WavSpABlock if c.architecture == "wavspa" else TransformerBlock
        for layer in range(c.num_layers):
            self.add_module(f"block{layer}", block(c, sdpa))
        self.final_norm = nn.LayerNorm(D)

    def forward(self, ids, padded=None):
        """padded: whether some id is 0 (padding); None finds out (one host sync).

        wavspa always builds a token mask (all ones when nothing is padding) and applies it;
        with no padding that is a multiplication by one and a masked_fill that fills nothing.
        Here the mask is left out entirely then (keep = None): the same numbers, and the
        eager baseline pays for no work that the result does not need."""
        c = self.config
        B, N = ids.shape
        if N > c.max_len:
            raise ValueError(f"sequence length {N} exceeds max_len {c.max_len}")
        keep = None
        if c.mask_padding:
            if padded is None:
                padded = bool((ids == 0).any())
            if padded:
                keep = ids != 0
        x = self.embed(ids)
        if self.cls is not None:
            x = torch.cat([self.cls.to(x.dtype).expand(B, 1, c.emb_dim), x], dim=1)
            if keep is not None:
                keep = torch.cat([keep.new_ones(B, 1), keep], dim=1)
        if self.positions is not None:
            x = self.positions(x)
        x = self.drop(x)
        for layer in range(c.num_layers):
            x = getattr(self, f"block{layer}")(x, keep)
        x = self.final_norm(x)
        if c.pooling == "cls":
            return x[:, 0]
        if c.pooling == "mean":
            if keep is None:
                return x.mean(dim=1)
            m = keep[:, :, None].to(x.dtype)
            return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        if keep is not None:
            x = x.masked_fill(~keep[:, :, None], torch.finfo(x.dtype).min)
        return x.amax(dim=1)


class SequenceClassifier(nn.Module):
    """Encoder -> Linear(classifier_mlp) -> ReLU -> Linear(num_classes); the head's Linear
    layers are head.0 and head.2, as in wavspa's Sequential."""

    def __init__(self, c, sdpa=False):
        super().__init__()
        self.encoder = Encoder(c, sdpa)
        self.head = nn.Sequential(nn.Linear(c.emb_dim, c.classifier_mlp), nn.ReLU(),
                                  nn.Linear(c.classifier_mlp, c.num_classes))

    def forward(self, ids, padded=None):
        return self.head(self.encoder(ids, padded))


# ---- running it ------------------------------------------------------------------------------


def tf32_off():
    """Plain float32 matmuls and convolutions. PyTorch 2.9 replaced the allow_tf32 switches
    with fp32_precision ("ieee" = no TF32) and warns on the old ones; use whichever exists
    (not both: mixing the two APIs is an error in some versions)."""
    try:  # PyTorch 1.13 raises AssertionError, not AttributeError, for an unknown attribute
        new_api = hasattr(torch.backends.cuda.matmul, "fp32_precision")
    except AssertionError:
        new_api = False
    if new_api:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def global_grad_norm(model):
    total = torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
    for p in model.parameters():
        if p.grad is not None:
            total += p.grad.to(torch.float64).pow(2).sum()
    return math.sqrt(total.item())


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def read_safetensors(path):
    """The tensors of a safetensors file: 8 bytes of little-endian header length, the JSON
    header (dtype, shape, data_offsets per name), then the data. The `safetensors` package
    when it is there; this reader where it is not (Debian's python3-torch comes without it)."""
    try:
        from safetensors.torch import load_file
        return load_file(path)
    except ImportError:
        pass
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
              "I32": torch.int32, "BF16": torch.bfloat16, "F16": torch.float16,
              "U8": torch.uint8, "BOOL": torch.bool}
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(blob[8 + n + begin:8 + n + end])
        flat = torch.frombuffer(raw, dtype=dtypes[entry["dtype"]]) if raw else \
            torch.empty(0, dtype=dtypes[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"]).clone()
    return tensors


def cmd_check(args):
    load_file = read_safetensors
    device = torch.device(args.device)
    tf32_off()
    config = load_config(os.path.join(args.dir, "config.json"))
    model = SequenceClassifier(config, sdpa=args.sdpa)
    model.load_state_dict(load_file(os.path.join(args.dir, "model.safetensors")), strict=True)
    model.to(device).eval()

    batch = load_file(os.path.join(args.dir, "batch.safetensors"))
    ids = batch["inputs"].to(device=device, dtype=torch.int64)
    labels = batch["labels"].to(device=device, dtype=torch.int64)
    ref_logits = batch["logits"].to(torch.float64)
    ref_loss = float(batch["loss"])
    ref_grad_norm = float(batch["grad_norm"])

    logits = model(ids)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grad_norm = global_grad_norm(model)

    got = logits.detach().to(device="cpu", dtype=torch.float64)
    if got.shape != ref_logits.shape:
        raise ValueError(f"logits have shape {tuple(got.shape)}, wavspa's {tuple(ref_logits.shape)}")
    diff = (got - ref_logits).abs()
    logits_ok = bool((diff <= 1e-4 + 1e-3 * ref_logits.abs()).all())
    loss_rel = relative(loss.item(), ref_loss)
    gradnorm_rel = relative(grad_norm, ref_grad_norm)
    ok = logits_ok and loss_rel <= 1e-3 and gradnorm_rel <= 1e-3

    impl = "pytorch-sdpa" if args.sdpa else "pytorch-eager"
    print(f"torch_step check: {impl} on {device_name(device)}, torch {torch.__version__}, "
          f"inputs {tuple(ids.shape)}; loss {loss.item():.6f} (wavspa {ref_loss:.6f}), "
          f"grad norm {grad_norm:.6f} (wavspa {ref_grad_norm:.6f})", file=sys.stderr)
    print(f"check {config.architecture} {'ok' if ok else 'FAILED'} "
          f"max_abs_logit_diff={diff.max().item():.3e} loss_rel={loss_rel:.3e} "
          f"gradnorm_rel={gradnorm_rel:.3e}")
    return 0 if ok else 1


def cmd_time(args):
    device = torch.device(args.device)
    tf32_off()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if not 1 <= args.len <= config.max_len:
        raise ValueError(f"--len {args.len} must be in [1, max_len {config.max_len}]")
    if config.vocab_size < 2:
        raise ValueError("random tokens need vocab_size >= 2 (id 0 is padding)")

    torch.manual_seed(0)
    model = SequenceClassifier(config, sdpa=args.sdpa).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    forward = torch.compile(model) if args.compile else model
    ids = torch.randint(1, config.vocab_size, (args.batch, args.len), device=device)
    labels = torch.randint(0, config.num_classes, (args.batch,), device=device)
    bf16 = args.precision == "bf16"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(ids, padded=False), labels)
        loss.backward()
        optimizer.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times_ms = []
    for _ in range(args.steps):
        sync()
        start = time.perf_counter()
        loss = step()
        sync()
        times_ms.append((time.perf_counter() - start) * 1e3)

    peak = (torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None
    print(f"torch_step time: last loss {loss.item():.4f}; ms/step "
          f"{' '.join(f'{t:.1f}' for t in times_ms)}", file=sys.stderr)
    impl = ("pytorch-sdpa" if args.sdpa else "pytorch-eager") + ("+compile" if args.compile else "")
    print(json.dumps({
        "impl": impl,
        "model": config.architecture,
        "precision": args.precision,
        "batch": args.batch,
        "len": args.len,
        "median_ms": round(statistics.median(times_ms), 3),
        "min_ms": round(min(times_ms), 3),
        "steps": args.steps,
        "peak_mem_mb": None if peak is None else round(peak, 1),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))
    return 0


def cmd_wavelet(args):
    """The wavelet path alone (see the module docstring and tools/bench_wavelet.cpp)."""
    device = torch.device(args.device)
    tf32_off()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(7)
    x = torch.randn(args.batch, args.len, args.dim, device=device).to(dtype).requires_grad_()
    seed = torch.randn(args.batch, args.len, args.dim, device=device).to(dtype)
    dec_lo = daubechies_dec_lo(args.wlen // 2).to(torch.float32)
    filters = dec_lo[:, None].expand(args.wlen, args.dim).contiguous().to(device).requires_grad_()

    def path(x, filters):
        bank = wavelet_bank(filters).to(x.dtype)
        bands = wavedec(x.transpose(1, 2), bank, args.levels)
        return waverec(bands, bank, args.len).transpose(1, 2)

    run = torch.compile(path) if args.compile else path

    def one():
        x.grad = None
        filters.grad = None
        run(x, filters).backward(seed)

    def clone():
        return x.detach().clone()

    def timed(fn):
        for _ in range(3):
            fn()
        times = []
        for _ in range(args.samples):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(args.group):
                fn()
            torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) * 1e3 / args.group)
        return statistics.median(times)

    ms, copy_ms = timed(one), timed(clone)
    S = x.numel() * x.element_size()
    traffic = sum(10 * S / 2**level for level in range(args.levels))
    gbs, copy_gbs = traffic / (ms * 1e-3) / 1e9, 2 * S / (copy_ms * 1e-3) / 1e9
    print(json.dumps({
        "impl": "pytorch-conv1d" + ("+compile" if args.compile else ""),
        "dtype": args.dtype, "batch": args.batch, "len": args.len, "dim": args.dim,
        "wlen": args.wlen, "levels": args.levels, "median_ms": round(ms, 4),
        "min_traffic_mb": round(traffic / 1e6, 1), "gb_per_s": round(gbs, 1),
        "copy_gb_per_s": round(copy_gbs, 1), "fraction_of_copy": round(gbs / copy_gbs, 3),
        "device": device_name(device), "torch": torch.__version__,
    }))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)

    check = verbs.add_parser("check", help="reproduce a wavspa dump's logits, loss and grad norm")
    check.add_argument("dir", help="folder with config.json, model.safetensors, batch.safetensors")
    check.add_argument("--device", default="cuda")
    check.add_argument("--sdpa", action="store_true", help="use F.scaled_dot_product_attention")

    timing = verbs.add_parser("time", help="time training steps on random tokens")
    timing.add_argument("--config", required=True, help="a wavspa model config (JSON)")
    timing.add_argument("--batch", type=int, default=32)
    timing.add_argument("--len", type=int, default=2000)
    timing.add_argument("--steps", type=int, default=20)
    timing.add_argument("--warmup", type=int, default=5)
    timing.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    timing.add_argument("--sdpa", action="store_true", help="use F.scaled_dot_product_attention")
    timing.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    timing.add_argument("--device", default="cuda")
    timing.add_argument("--threads", type=int, default=0,
                        help="CPU threads (torch.set_num_threads); default: PyTorch's")

    wav = verbs.add_parser("wavelet", help="time wavedec + waverec forward and backward (conv1d)")
    for name, default in (("batch", 32), ("len", 2000), ("dim", 128), ("wlen", 16), ("levels", 1),
                          ("samples", 20), ("group", 10)):
        wav.add_argument("--" + name, type=int, default=default)
    wav.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    wav.add_argument("--compile", action="store_true", help="wrap the path in torch.compile")
    wav.add_argument("--device", default="cuda")

    args = parser.parse_args(argv)
    if args.verb == "wavelet":
        return cmd_wavelet(args)
    if args.verb == "time" and (args.steps < 1 or args.warmup < 0 or args.batch < 1):
        parser.error("--steps and --batch must be >= 1, --warmup >= 0")
    if args.verb == "time":
        return cmd_time(args)
    try:
        return cmd_check(args)
    except Exception as error:  # still give the one result line that callers read
        import traceback
        traceback.print_exc()
        message = " ".join(str(error).split())[:300]
        print(f"check ? FAILED error={type(error).__name__}: {message}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
