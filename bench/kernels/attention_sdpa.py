"""PyTorch's attention at the sizes bench/kernels/attention.cu times.

Default: scaled_dot_product_attention on bfloat16 (B, H, N, d) contiguous tensors with H = 8.
`f32`: float32 tensors, SDPA (its float32 backend) and the materialised eager formula
(softmax(q k^T scale) v), beside the float32 kernels. Median of 30 CUDA-event timings after 5
warm-ups, the FLOPs FlashAttention counts (4 N^2 d per head forward, 2.5 times that backward).
Prints one line per size in the format of the C++ bench.
"""
import torch
import torch.nn.functional as F


def median_ms(fn, reps=30, warm=5):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for it in range(reps + warm):
        start.record()
        fn()
        end.record()
        end.synchronize()
        if it >= warm:
            times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def row(bh, n, d, causal, dropout=0.0):
    h = 8
    gen = torch.Generator(device="cuda").manual_seed(7)
    q, k, v, go = (torch.randn(bh // h, h, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
                   for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)

    def fwd_bwd():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)
        torch.autograd.grad(out, (q, k, v), go)

    f, fb = median_ms(fwd), median_ms(fwd_bwd)
    flops = 4.0 * bh * n * n * d * (0.5 if causal else 1.0)
    print(f"sdpa   bf16 BH {bh:4d} N {n:5d} d {d:3d} {'causal' if causal else '':6s}{' p0.1' if dropout else ''} | fwd {f:8.3f} ms "
          f"{flops / f * 1e-9:6.1f} TFLOP/s | fwd+bwd {fb:8.3f} ms {3.5 * flops / fb * 1e-9:6.1f} TFLOP/s")


def row_f32(bh, n, d, dropout=0.0):
    """float32 tensors: SDPA (its float32 backend) and the materialised eager formula."""
    h = 8
    gen = torch.Generator(device="cuda").manual_seed(7)
    q, k, v, go = (torch.randn(bh // h, h, n, d, device="cuda", dtype=torch.float32, generator=gen)
                   for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)
    scale = d ** -0.5

    def eager(q, k, v):
        w = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)
        if dropout:
            w = F.dropout(w, dropout)
        return w @ v

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)

    flops = 4.0 * bh * n * n * d
    for name, fn in (("sdpa", sdpa), ("eager", eager)):
        def fwd():
            with torch.no_grad():
                fn(q, k, v)

        def fwd_bwd():
            torch.autograd.grad(fn(q, k, v), (q, k, v), go)

        f, fb = median_ms(fwd), median_ms(fwd_bwd)
        print(f"{name:6s} f32  BH {bh:4d} N {n:5d} d {d:3d} {'':6s}{' p0.1' if dropout else ''} | fwd {f:8.3f} ms "
              f"{flops / f * 1e-9:6.1f} TFLOP/s | fwd+bwd {fb:8.3f} ms {3.5 * flops / fb * 1e-9:6.1f} TFLOP/s")


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "f32":
        print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
        for bh, n, dropout in ((32, 2000, 0.0), (32, 2000, 0.1), (32, 1000, 0.0), (128, 4096, 0.0)):
            row_f32(bh, n, 64, dropout)
        sys.exit(0)
    print(f"# {torch.cuda.get_device_name()} torch {torch.__version__}")
    for bh in (32, 128):
        for n in (1000, 2000, 4096):
            row(bh, n, 64, False)
    row(32, 2000, 128, False)
    row(32, 2000, 32, False)
    row(32, 2000, 64, True)
    row(32, 2000, 64, False, 0.1)
