"""Loop overhead benchmark: the framework's round against the floor, a minimal plain PyTorch loop doing
the same tensor work, under each CPU allocator setting.

    python benchmarks/bench.py                       # every case, CPU, both allocator settings, 4 timed rounds
    python benchmarks/bench.py --cases dfad-digits fast2-digits --rounds 6 --device cuda --amp bf16
    python benchmarks/bench.py --memory fast          # only dfkd's default allocator setting
    python benchmarks/bench.py --json results.jsonl  # also append one JSON object per case and setting

For each case (method x teacher -> student x input size x batch), both loops are built from the same
architectures (random weights: timing only), warmed up, then timed round by round. A round is the
method's unit of work: DFAD = 1 generator step + 5 student steps on fresh samples; Fast-2 = clone the
meta-generator, 2 steps on clone and latent codes under the BN-statistics (momentum 0.9) + CE +
masked adversarial objective on a crop of the batch, the first-order MAML update through the shared
Adam, the lowest-loss batch into the replay pool, 5 student steps from the pool read through crop + flip.

The floor is what a researcher would write by hand: fresh copies of the very networks with no hook
of the framework's (`plain_copy`), a frozen teacher, the generator's backward restricted to its
parameters, no registry, objective object, guard or logging; Fast's BN statistics come from plain
forward hooks switched on for the generator steps only.

Allocator (`--memory`, CPU): `fast` = dfkd's default (dfkd/memory.py: glibc mallopt thresholds, freed
large blocks reused), `glibc` = the C library untouched. Each setting lives in its own worker process
(the allocator is per process); the workers stay alive side by side and the parent asks them for one
round at a time, framework and floor alternately, every setting in turn, so machine noise hits all
alike. Printed per case and setting: median seconds per round of each loop, their ratio (framework /
floor; the target is <= 1.05), samples per second and the worker's peak memory (process RSS on CPU,
covering both loops; max_memory_allocated on CUDA); and per case the allocator's speed-up (glibc /
fast, for each loop). The framework loop is `Distiller.train_round` with logging and evaluation off,
as in a run between log points.
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
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
    from dfkd.io.data import dataset_info
    from dfkd.io.tracking import Tracker
    from dfkd.methods.configure import build_config
    from dfkd.models import build_model
    from dfkd.run.parts import build_parts, build_pool
    from dfkd.run.runner import make_distiller

    cfg = build_config(method=case["method"], sets=[
        f"data.name={case['data']}", f"teacher.arch={case['teacher']}", f"student.arch={case['student']}",
        f"synth.batch_size={case['batch']}", f"source.width={case.get('width', 128)}", "synth.warmup=0",
        "tracking.mode=disabled", f"device={device}", f"perf.amp={amp}", "distill.rounds=1000"])
    info = dataset_info(cfg.data)
    teacher = build_model(cfg.teacher.arch, info.num_classes, info.in_channels).to(device).eval()
    parts = build_parts(cfg, teacher, info, device)
    tracker = Tracker(workdir, cfg.tracking, {}, name="bench", job_type="bench")
    loop = make_distiller(cfg, parts, None, tracker, workdir, device, build_pool(cfg, info, device, None))
    nets = (teacher, parts.student, parts.synth.generator)
    return loop.train_round, cfg, nets


# ----------------------------------------------------------------------------- the floor
def plain_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy with every hook the framework registered removed (a deep copy keeps forward and
    backward hooks: the framework's BN-statistics probe would otherwise run in the floor too)."""
    module = copy.deepcopy(module)
    for m in module.modules():
        for name, value in vars(m).items():
            if name.startswith("_") and "hooks" in name and isinstance(value, dict):
                value.clear()
    return module


def bare_loop(cfg, nets, device: torch.device, amp: str):
    """The floor: plain PyTorch, the same networks (hook-free copies), the same passes; no registry,
    objective object, guard or logging."""
    teacher, student, generator = (plain_copy(m) for m in nets)
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

    # Fast (meta schedule, the authors' semantics): BN statistics with momentum via plain forward hooks
    # (the running statistic moves once per round), CE on drawn targets, the agreement-masked KL,
    # the lowest-loss batch kept, first-order MAML summed into the shared generator's Adam, crop + flip
    # in pixel space on the synthesized batch and on every pool read, the student in eval mode while
    # the generator is optimised
    import kornia.augmentation as K

    bns = [m for m in teacher.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    stats, prev, last, on = [], {}, {}, [False]

    def hook(m, inp, out):
        if on[0]:
            v, mu = torch.var_mean(inp[0].float(), dim=[0, 2, 3], correction=0)
            last[id(m)] = (mu.detach(), v.detach())
            if id(m) in prev:
                mu, v = 0.9 * prev[id(m)][0] + 0.1 * mu, 0.9 * prev[id(m)][1] + 0.1 * v
            stats.append((mu, v, m.running_mean, m.running_var))

    for m in bns:
        m.register_forward_hook(hook)
    w = cfg.objective.generator
    size = generator.size
    mean = torch.tensor(cfg_mean(cfg), device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg_std(cfg), device=device).view(1, -1, 1, 1)
    crop = torch.nn.Sequential(K.RandomCrop((size, size), padding=size // 8), K.RandomHorizontalFlip()).to(device)
    aug = lambda x: (crop(x * std + mean) - mean) / std  # noqa: E731
    pool = torch.empty((cfg.pool.capacity, generator.channels, size, size), dtype=torch.float16)
    held = [0, 0]  # size, head
    lr = cfg.source.optim.lr
    meta = torch.optim.Adam(generator.parameters(), lr=lr * cfg.synth.g_steps, betas=(0.5, 0.999))

    def round_():
        clone = copy.deepcopy(generator)
        z = torch.nn.Parameter(torch.randn(b, nz, device=device))
        opt = torch.optim.Adam([{"params": list(clone.parameters())}, {"params": [z], "lr": cfg.synth.z_lr}],
                               lr=lr, betas=(0.5, 0.999))
        targets = torch.randint(10, (b,), device=device)
        grads = [torch.zeros_like(p) for p in clone.parameters()]
        best, kept = float("inf"), None
        student.eval()
        for _ in range(cfg.synth.g_steps):
            stats.clear()
            on[0] = True
            with autocast:
                x = clone(z)
                seen = aug(x)
                t = teacher(seen)
                on[0] = False
                s = student(seen)
                mask = (s.argmax(1) == t.argmax(1)).float()
                kl = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="none", log_target=True).sum(1)
                bn = sum(torch.linalg.vector_norm(mu - rm) + torch.linalg.vector_norm(v - rv)
                         for mu, v, rm, rv in stats)
                loss = -w["adv_kl"] * (kl * mask).mean() + w["bn"] * bn + w["ce"] * F.cross_entropy(t, targets)
            if float(loss.detach()) < best:
                best, kept = float(loss.detach()), x.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=list(clone.parameters()) + [z])
            for g, q in zip(grads, clone.parameters()):
                g.add_(q.grad)
            opt.step()
        student.train()
        with torch.no_grad():
            for k, (mu, v) in last.items():
                prev[k] = (mu, v) if k not in prev else (0.9 * prev[k][0] + 0.1 * mu, 0.9 * prev[k][1] + 0.1 * v)
            for p, g in zip(generator.parameters(), grads):
                p.grad = g
            meta.step()
            idx = (held[1] + torch.arange(b)) % len(pool)
            pool[idx] = kept.float().cpu().half()
            held[0], held[1] = min(len(pool), held[0] + b), (held[1] + b) % len(pool)
        for _ in range(kd_steps):
            xb = aug(pool[torch.randint(held[0], (b,))].float().to(device))
            with torch.no_grad(), autocast:
                t = teacher(xb)
            with autocast:
                loss = F.kl_div(F.log_softmax(student(xb), 1), F.log_softmax(t, 1), reduction="batchmean",
                                log_target=True)
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
    return round_


def cfg_mean(cfg):
    from dfkd.io.data import dataset_info

    return dataset_info(cfg.data).mean


def cfg_std(cfg):
    from dfkd.io.data import dataset_info

    return dataset_info(cfg.data).std


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


MEMORY = {"fast": "dfkd's default: glibc mallopt, freed large blocks reused (dfkd/memory.py)",
          "glibc": "the C library untouched"}


def _worker(conn, name: str, device: str, amp: str, memory_setting: str) -> None:
    """One allocator setting's process: builds both loops, then runs one round of the side asked for
    per message and answers (seconds, peak MiB); None ends it."""
    from dfkd.run import memory

    state = memory.apply(True) if memory_setting == "fast" else "glibc defaults (untouched)"
    dev = torch.device(device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        fw, cfg, nets = framework_loop(CASES[name], dev, amp, Path(tmp))
        loops = {"framework": fw, "bare": bare_loop(cfg, nets, dev, amp)}
        conn.send({"samples": cfg.synth.batch_size * (cfg.synth.g_steps + cfg.distill.kd_steps),
                   "threads": torch.get_num_threads(), "memory_state": state,
                   "large_blocks_mapped": memory.large_blocks_are_mapped()})
        while (side := conn.recv()) is not None:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            _sync(dev)
            t0 = time.perf_counter()
            loops[side]()
            _sync(dev)
            conn.send((time.perf_counter() - t0, peak_memory(dev)))


def bench(name: str, device: str, rounds: int, warmup: int, amp: str, settings: list[str]) -> list[dict]:
    """Both loops under each allocator setting, interleaved round by round across the settings'
    worker processes; one result per setting."""
    ctx = multiprocessing.get_context("spawn")
    workers = {}
    try:
        for m in settings:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, name, device, amp, m), daemon=True)
            proc.start()
            workers[m] = (parent, proc)
        meta = {m: conn.recv() for m, (conn, _) in workers.items()}
        times = {(m, side): [] for m in settings for side in ("framework", "bare")}
        mem = {m: {} for m in settings}
        order = list(times)
        for i in range(warmup + rounds):
            for m, side in order if i % 2 == 0 else order[::-1]:
                conn = workers[m][0]
                conn.send(side)
                seconds, peak = conn.recv()
                if i >= warmup:
                    times[m, side].append(seconds)
                mem[m][side] = max(mem[m].get(side, 0.0), peak)
        for conn, _ in workers.values():
            conn.send(None)
    finally:
        for _, proc in workers.values():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    rows = []
    for m in settings:
        fw, bare = (statistics.median(times[m, side]) for side in ("framework", "bare"))
        samples = meta[m]["samples"]
        rows.append({"case": name, **CASES[name], "device": device, "amp": amp, "memory": m,
                     "memory_state": meta[m]["memory_state"], "large_blocks_mapped": meta[m]["large_blocks_mapped"],
                     "threads": meta[m]["threads"], "rounds_timed": rounds,
                     "framework_s_per_round": round(fw, 4), "bare_s_per_round": round(bare, 4),
                     "ratio": round(fw / bare, 3),
                     "framework_samples_per_s": round(samples / fw, 1), "bare_samples_per_s": round(samples / bare, 1),
                     "peak_mem_mib": {k: round(v, 1) for k, v in mem[m].items()}})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds per loop (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--memory", nargs="+", default=list(MEMORY), choices=list(MEMORY),
                   help="CPU allocator settings, each in its own worker process: " +
                        "; ".join(f"{k} = {v}" for k, v in MEMORY.items()))
    p.add_argument("--json", help="append the results here, one JSON object per line")
    args = p.parse_args(argv)
    settings = args.memory if args.device == "cpu" else ["fast"]  # the allocator setting is the CPU's
    rows = []
    for name in args.cases:
        for r in bench(name, args.device, args.rounds, args.warmup, args.amp, settings):
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print("\n| case | device | amp | memory | framework s/round | floor s/round | ratio | samples/s (fw) | "
          "peak MiB |", file=sys.stderr)
    print("|---|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['case']} | {r['device']} | {r['amp']} | {r['memory']} | {r['framework_s_per_round']:.3f} | "
              f"{r['bare_s_per_round']:.3f} | {r['ratio']:.2f} | {r['framework_samples_per_s']:.0f} | "
              f"{max(r['peak_mem_mib'].values()):.0f} |", file=sys.stderr)
    by_case = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["memory"]] = r
    pairs = {c: d for c, d in by_case.items() if {"fast", "glibc"} <= set(d)}
    if pairs:
        print("\n| case | fast memory speed-up: framework | floor | peak MiB fast / glibc |", file=sys.stderr)
        print("|---|---|---|---|", file=sys.stderr)
        for c, d in pairs.items():
            f, g = d["fast"], d["glibc"]
            print(f"| {c} | {g['framework_s_per_round'] / f['framework_s_per_round']:.2f}x | "
                  f"{g['bare_s_per_round'] / f['bare_s_per_round']:.2f}x | "
                  f"{max(f['peak_mem_mib'].values()):.0f} / {max(g['peak_mem_mib'].values()):.0f} |", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
