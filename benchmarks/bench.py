"""Loop overhead benchmark: the framework's round against a bare PyTorch loop doing the same tensor work.

    python benchmarks/bench.py                       # every case, CPU, 4 timed rounds each
    python benchmarks/bench.py --cases dfad-digits fast2-digits --rounds 6 --device cuda --amp bf16
    python benchmarks/bench.py --json results.jsonl  # also append one JSON object per case

For each case (method × teacher → student × input size × batch), both loops are built from the same
architectures (random weights: timing only), warmed up, then timed round by round, interleaved in one
process so machine noise hits both alike. A round is the method's unit of work: DFAD = 1 generator
step + 5 student steps on fresh samples; Fast-2 = clone the meta-generator, 2 steps on clone and
latent codes under the BN-statistics (momentum 0.9) + one-hot + adversarial objective, a Reptile
update, the batch into the replay pool, 5 student steps from the pool. Printed per case: median
seconds per round of each loop, their ratio (framework / bare; the target is <= 1.10), samples per
second (synthesized + student samples) and peak memory (process RSS on CPU, max_memory_allocated on
CUDA). The framework loop is `Distiller.train_round` with logging and evaluation off, as in a run
between log points.
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CASES = {
    "dfad-digits": dict(method="dfad", data="digits", teacher="cnn", student="cnn_small", batch=128, width=64),
    "fast2-digits": dict(method="fast2", data="digits", teacher="cnn", student="cnn_small", batch=128, width=64),
    "dfad-r20-r8": dict(method="dfad", data="standin:cifar10", teacher="resnet20", student="resnet8", batch=256),
    "fast2-r20-r8": dict(method="fast2", data="standin:cifar10", teacher="resnet20", student="resnet8", batch=256),
    "dfad-wrn40_2-wrn16_1": dict(method="dfad", data="standin:cifar10", teacher="wrn40_2", student="wrn16_1",
                                 batch=256),
    "fast2-wrn40_2-wrn16_1": dict(method="fast2", data="standin:cifar10", teacher="wrn40_2", student="wrn16_1",
                                  batch=256),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the framework's round
def framework_loop(case: dict, device: torch.device, amp: str, workdir: Path):
    from dfkd.data import dataset_info
    from dfkd.methods import build_config
    from dfkd.models import build_model
    from dfkd.runs import build_parts, build_pool, make_distiller
    from dfkd.tracking import Tracker

    cfg = build_config(method=case["method"], sets=[
        f"data.name={case['data']}", f"teacher.arch={case['teacher']}", f"student.arch={case['student']}",
        f"synth.batch_size={case['batch']}", f"source.width={case.get('width', 128)}", "synth.warmup=0",
        "tracking.mode=disabled", f"device={device}", f"perf.amp={amp}", "distill.rounds=1000"])
    info = dataset_info(cfg.data)
    teacher = build_model(cfg.teacher.arch, info.num_classes, info.in_channels).to(device).eval()
    parts = build_parts(cfg, teacher, info, device)
    tracker = Tracker(workdir, cfg.tracking, {}, name="bench", job_type="bench")
    loop = make_distiller(cfg, parts, None, tracker, workdir, device, build_pool(cfg, info, device, None))
    nets = (teacher, parts["student"], parts["synth"].generator)
    return loop.train_round, cfg, nets


# ----------------------------------------------------------------------------- bare PyTorch rounds
def bare_loop(cfg, nets, device: torch.device, amp: str):
    """Plain PyTorch, same networks (fresh copies), same passes; no hooks beyond BN statistics, no
    registry, no objective object, no logging."""
    teacher, student, generator = (copy.deepcopy(m) for m in nets)
    teacher.requires_grad_(False).eval()
    b, nz = cfg.synth.batch_size, generator.nz
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else _null()
    opt_s = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    kd_steps = cfg.distill.kd_steps

    if cfg.method == "dfad":
        opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))

        def round_():
            with autocast:
                x = generator(torch.randn(b, nz, device=device))
                loss = -(student(x) - teacher(x)).abs().mean()
            opt_g.zero_grad(set_to_none=True)
            loss.backward(inputs=list(generator.parameters()))
            opt_g.step()
            for _ in range(kd_steps):
                with torch.no_grad(), autocast:
                    x = generator(torch.randn(b, nz, device=device))
                    t = teacher(x)
                with autocast:
                    loss = (student(x) - t).abs().mean()
                opt_s.zero_grad(set_to_none=True)
                loss.backward()
                opt_s.step()
        return round_

    # Fast (meta schedule): BN statistics with momentum via plain forward hooks
    bns = [m for m in teacher.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    stats, prev, on = [], {}, [False]

    def hook(m, inp, out):
        if on[0]:
            v, mu = torch.var_mean(inp[0].float(), dim=[0, 2, 3], correction=0)
            if id(m) in prev:
                mu, v = 0.9 * prev[id(m)][0] + 0.1 * mu, 0.9 * prev[id(m)][1] + 0.1 * v
            prev[id(m)] = (mu.detach(), v.detach())
            stats.append((mu, v, m.running_mean, m.running_var))

    for m in bns:
        m.register_forward_hook(hook)
    w = cfg.objective.generator
    pool = torch.empty((cfg.pool.capacity, generator.channels, generator.size, generator.size), dtype=torch.float16)
    held = [0, 0]  # size, head

    def round_():
        clone = copy.deepcopy(generator)
        z = torch.nn.Parameter(torch.randn(b, nz, device=device))
        opt = torch.optim.Adam(list(clone.parameters()) + [z], lr=cfg.source.optim.lr, betas=(0.5, 0.999))
        for _ in range(cfg.synth.g_steps):
            stats.clear()
            on[0] = True
            with autocast:
                x = clone(z)
                t = teacher(x)
                on[0] = False
                s = student(x)
                adv = -F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="batchmean", log_target=True)
                bn = sum(torch.linalg.vector_norm(mu - rm) + torch.linalg.vector_norm(v - rv)
                         for mu, v, rm, rv in stats)
                loss = w["adv_kl"] * adv + w["bn"] * bn + w["oh"] * F.cross_entropy(t, t.argmax(1))
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=list(clone.parameters()) + [z])
            opt.step()
        with torch.no_grad():
            for p, q in zip(generator.parameters(), clone.parameters()):
                p.add_(q - p, alpha=cfg.synth.meta_lr)
            for p, q in zip(generator.buffers(), clone.buffers()):
                p.copy_(q) if not p.is_floating_point() else p.lerp_(q, cfg.synth.meta_lr)
            idx = (held[1] + torch.arange(b)) % len(pool)
            pool[idx] = x.detach().float().cpu().half()
            held[0], held[1] = min(len(pool), held[0] + b), (held[1] + b) % len(pool)
        for _ in range(kd_steps):
            xb = pool[torch.randint(held[0], (b,))].float().to(device)
            with torch.no_grad(), autocast:
                t = teacher(xb)
            with autocast:
                loss = F.kl_div(F.log_softmax(student(xb), 1), F.log_softmax(t, 1), reduction="batchmean",
                                log_target=True)
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
    return round_


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def peak_memory(device) -> float:
    """MiB: max_memory_allocated on CUDA, the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(name: str, case: dict, device: torch.device, rounds: int, warmup: int, amp: str) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        fw, cfg, nets = framework_loop(case, device, amp, Path(tmp))
        bare = bare_loop(cfg, nets, device, amp)
        times = {"framework": [], "bare": []}
        mem = {}
        for i in range(warmup + rounds):
            for side, fn in (("framework", fw), ("bare", bare)) if i % 2 == 0 else (("bare", bare), ("framework", fw)):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                if i >= warmup:
                    times[side].append(time.perf_counter() - t0)
                mem[side] = max(mem.get(side, 0.0), peak_memory(device))
    per_round = {k: statistics.median(v) for k, v in times.items()}
    samples = cfg.synth.batch_size * (cfg.synth.g_steps + cfg.distill.kd_steps)
    return {"case": name, **case, "device": str(device), "amp": amp, "threads": torch.get_num_threads(),
            "rounds_timed": rounds, "framework_s_per_round": round(per_round["framework"], 4),
            "bare_s_per_round": round(per_round["bare"], 4),
            "ratio": round(per_round["framework"] / per_round["bare"], 3),
            "framework_samples_per_s": round(samples / per_round["framework"], 1),
            "bare_samples_per_s": round(samples / per_round["bare"], 1),
            "peak_mem_mib": {k: round(v, 1) for k, v in mem.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds per loop (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--json", help="append the results here, one JSON object per line")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for name in args.cases:
        r = bench(name, CASES[name], device, args.rounds, args.warmup, args.amp)
        rows.append(r)
        print(json.dumps(r), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r) + "\n")
    print("\n| case | device | amp | framework s/round | bare s/round | ratio | samples/s (fw) | peak MiB |",
          file=sys.stderr)
    print("|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['case']} | {r['device']} | {r['amp']} | {r['framework_s_per_round']:.3f} | "
              f"{r['bare_s_per_round']:.3f} | {r['ratio']:.2f} | {r['framework_samples_per_s']:.0f} | "
              f"{max(r['peak_mem_mib'].values()):.0f} |", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
