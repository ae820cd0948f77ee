"""Prints ncu's raw CSV pages (one row per kernel launch) as a short table, one column per kernel.

Usage: python3 ncu_table.py a.csv [b.csv ...]   (the output of `ncu --csv --page raw`)
"""
import csv
import sys

SHORT = {
    "gpu__time_duration.sum": "time",
    "smsp__inst_executed.sum": "warp instructions",
    "launch__registers_per_thread": "regs",
    "launch__shared_mem_per_block_dynamic": "smem/block",
    "launch__grid_size": "grid",
    "launch__block_size": "block",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "occupancy %",
    "smsp__issue_active.avg.pct_of_peak_sustained_active": "issue busy %",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active": "tensor pipe %",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed": "smem wavefronts %",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum": "smem wavefronts",
    "l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum": "smem conflicts",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram %",
    "sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active": "lsu inst %",
}


def rows(path):
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    reader = list(csv.reader(lines))
    if len(reader) < 3:
        return []
    head, units, data = reader[0], reader[1], reader[2:]
    return [(head, units, r) for r in data]


def main():
    kernels = []
    for path in sys.argv[1:]:
        for head, units, r in rows(path):
            d = dict(zip(head, r))
            u = dict(zip(head, units))
            kernels.append((d.get("Kernel Name", "?"), d, u))
    if not kernels:
        print("no kernels profiled")
        return
    names = [k[0].split("(")[0].split("<")[0][-28:] for k in kernels]
    print(f"{'metric':24s}" + "".join(f"{n:>30s}" for n in names))
    metrics = [m for m in kernels[0][1]
               if m in SHORT or (m.startswith("smsp__average_warp_latency_issue_stalled_") and m.endswith(".ratio"))]
    for m in metrics:
        label = SHORT.get(m, m.replace("smsp__average_warp_latency_issue_stalled_", "stall ").replace(".ratio", ""))
        vals = []
        for _, d, u in kernels:
            v = d.get(m, "")
            unit = u.get(m, "")
            vals.append(f"{v} {unit}".strip())
        print(f"{label:24s}" + "".join(f"{v:>30s}" for v in vals))


if __name__ == "__main__":
    main()
