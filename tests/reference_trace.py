"""dfkd's side of a reference trace (tests/trace_setting.py says what a trace is): a method's rounds at
the trace setting, with the setting's draws injected where dfkd would draw its own, recorded as the
authors' harness records theirs:

    {"rounds": [{"gen": [{term: value, ..., "loss": weighted total} per source step],
                 "student": [{term: value, ..., "loss": weighted total (, "v": the self-paced
                              weight it is then multiplied by)} per student step],
                 "generator": {"norm", "moved"}, "student_weights": {"norm", "moved"}}, ...]}

`run(sets, rounds, inject)` builds the run from `dfkd.run.parts.build_parts` and drives
`Distiller.train_round` directly (no run directory, no evaluation). `inject` names the draws the
method consumes (see Injector)."""
from __future__ import annotations

import contextlib
import copy

import torch
import trace_setting as S

from dfkd.config.schema import Config
from dfkd.io.data import dataset_info
from dfkd.methods.configure import build_config
from dfkd.run.loop import Distiller
from dfkd.run.parts import build_parts, build_pool

# pool.sampling=uniform: the Injector puts the setting's pool indices in `pool.sample`, whatever order the
# recipe reads its pool in (the shuffled passes are held to their loader by test_distill)
SETTING = ["data.name=none", "data.flip=true", f"data.channels={S.CHANNELS}", f"data.image_size={S.SIZE}",
           f"data.num_classes={S.CLASSES}", f"data.mean={list(S.MEAN)}", f"data.std={list(S.STD)}",
           f"synth.batch_size={S.N}", f"source.nz={S.NZ}", f"source.width={S.WIDTH}",
           "student.optim.schedule=constant", "source.optim.schedule=constant", "pool.storage=fp64",
           "pool.capacity=512", "pool.sampling=uniform", "device=cpu", "tracking.mode=disabled", "seed=0"]


class Injector:
    """Puts the setting's draws where dfkd's schedule, pool and views would draw their own. Round r
    counts from 1; within a round, every consumer has its own step counter."""

    def __init__(self, loop: Distiller, draws: set[str]):
        self.loop, self.synth, self.draws = loop, loop.synth, draws
        self.r, self.phase, self.count = 0, "student", {}
        info = dataset_info(loop.cfg.data)  # the run's normalisation (the setting's, or [0, 1] for ARD / RSLAD)
        mean = torch.tensor(info.mean).view(1, -1, 1, 1)
        std = torch.tensor(info.std).view(1, -1, 1, 1)
        norm, unnorm = (lambda x: (x - mean) / std), (lambda x: x * std + mean)
        synth = self.synth
        train_round, synthesize = loop.train_round, synth.synthesize

        def next_round():
            self.r, self.phase, self.count = self.r + 1, "student", {}
            return train_round()

        def synthesizing(student, on_step=None):
            self.phase = "gen"
            try:
                return synthesize(student, on_step=on_step)
            finally:
                self.phase = "student"

        loop.train_round, synth.synthesize = next_round, synthesizing
        if "z" in draws:  # a fresh code every step (and for every fresh student batch)
            synth.z = lambda n: S.draw("z", self.phase, self.r, self.next("z:" + self.phase), shape=(n, S.NZ))
        if "codes" in draws:  # one code per round (optimised, or held fixed with synth.latent=round)
            make = synth.round_optimizer

            def round_optimizer(steps):
                out = make(steps)
                with torch.no_grad():
                    synth.codes.copy_(S.draw("z", self.r))
                return out

            synth.round_optimizer = round_optimizer
        if "directions" in draws:  # DFME: the forward differences' directions, normalised Gaussians
            def directions(n, m, d):
                u = S.draw("normal", "directions", self.r, self.next("directions"), shape=(n, m, d))
                return u / u.norm(dim=2, keepdim=True)

            synth.draw_directions = directions
        if "ood" in draws:  # MosaicKD: the discriminator's real batches, the student's out-of-domain images
            from types import SimpleNamespace

            from dfkd.synthesis.mosaic import MosaicPatches

            mosaic = synth.extension(MosaicPatches)
            mosaic.d_batches = SimpleNamespace(next=lambda: (norm(S.draw("images", "ood-d", self.r)), None))
            mosaic.student_batches = SimpleNamespace(
                next=lambda: (norm(S.draw("images", "ood-s", self.r, self.next("ood-s"))), None))
            torch.manual_seed(S._seed("disc"))  # its initial weights: a seeded reset, as the harness does
            for m in mosaic.d.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        if "targets" in draws:
            synth._targets = lambda: S.draw("targets", self.r)
        if "tiled_targets" in draws:  # SpaceshipNet's 0..K-1 tiled and then 0..N mod K - 1 (dfkd draws the rest)
            synth._targets = lambda: torch.arange(S.N) % S.CLASSES
        if "reset" in draws:  # the re-initialisation draws from a seeded global generator, on both sides
            name = "reset_source" if hasattr(synth, "reset_source") else "begin_round"  # NAYER / reinit
            reset = getattr(synth, name)

            def seeded_reset():
                torch.manual_seed(int(S.draw("seed", "reset", self.r)))
                reset()

            setattr(synth, name, seeded_reset)
        if "noisy" in draws:  # NAYER: each batch's noisy layers, from a seeded global generator
            begin = synth.begin_round

            def begin_batch():
                torch.manual_seed(int(S.draw("seed", "noisy", self.r, self.next("noisy"))))
                begin()

            synth.begin_round = begin_batch
        if "embedding" in draws:  # NAYER's class embedding
            with torch.no_grad():
                synth.generator.embed.copy_(S.embedding(synth.generator.embed.shape[1]))
        if "crop" in draws:  # synth.augment: the global view
            synth.ctx.augment = lambda x: norm(S.crop_flip(unnorm(x), "global", self.r, self.next("crop")))
        if "roll" in draws:
            aug = synth.ctx.augment
            synth.ctx.augment = lambda x: norm(S.roll_flip(unnorm(x), aug.shift, aug.flip, "roll",
                                                                  self.r, self.next("roll")))
        if "local" in draws:  # CMI's local view
            from dfkd.synthesis.contrast import Contrast

            contrast = synth.extension(Contrast)
            contrast.local = lambda x: norm(S.resized_crop_flip(unnorm(x), "local", self.r,
                                                                       self.next("local")))
            contrast.read_bank = lambda: self.bank(contrast)
        if "pool" in draws:
            pool = loop.pool
            pool.sample = lambda n: pool.data[S.draw("index", "pool", self.r, self.next("pool"),
                                                     shape=(n, len(pool)))]
        if "exchange" in draws:  # SpaceshipNet: each student batch's level, pool read, coin and kept channels
            from dfkd.synthesis.exchange import FeatureExchange

            exchange = synth.extension(FeatureExchange)
            levels = exchange.levels

            def draw_level():
                k = S.draw("index", "level", self.r, self.next("level"), shape=(1, len(levels)))
                return levels[int(k[0])]

            exchange.draw_level = draw_level
            exchange.draw_exchange = lambda: float(S.draw("uniform", "exchange", self.r, self.count["level"],
                                                          shape=(1,))[0]) < exchange.p
            exchange.draw_kept = lambda n, c: torch.stack([S.draw("subset", "channels", self.r, self.count["level"], i,
                                                                  shape=(c // 2, c)) for i in range(n)])
            for level in exchange.levels:
                pool = exchange.pool(level)
                pool.passes = self._passes(pool, level)
        if "student_crop" in draws:
            loop.augment = lambda x: norm(S.crop_flip(unnorm(x), "student", self.r,
                                                             self.next("student_crop")))

        if "batch" in draws or "teacher_labels" in draws:  # real data: the round's batch in [0, 1], its labels
            def batch():
                x = norm(S.draw("images", self.r))
                if "teacher_labels" in draws:  # the teacher's classes, so that some samples are right for both
                    with torch.no_grad():
                        return x, synth.probe.teacher(x).argmax(1)
                return x, S.draw("labels", self.r)

            synth.batches.next = batch
        if "real_crop" in draws:  # real data: its training crop + flip
            synth.augment = lambda x: norm(S.crop_flip(unnorm(x), "real", self.r))
        if "start" in draws:  # the attack's start: uniform in the ball, or noise x N(0, 1) (RSLAD)
            ball = synth.ball

            def start(x, random=True, noise=0.0, clip=True):
                if noise > 0:
                    return S.draw("normal", "start", self.r, shape=tuple(x.shape)) * (noise / ball.std)
                if not random:
                    return torch.zeros_like(x)
                delta = (S.draw("uniform", "start", self.r, shape=tuple(x.shape)) * 2 - 1) * ball.eps
                return ball.project(x, delta) if clip else delta

            ball.start = start
        if "attack_classes" in draws:  # BSS: the uniform draws behind the target classes
            synth.attack_draw = lambda n: S.draw("uniform", "classes", self.r, shape=(n,))
        if "queue" in draws:  # AdaDFKD: the relation queue's initial columns (random unit vectors)
            from dfkd.synthesis.relation import RelationQueue

            queue = synth.extension(RelationQueue).queue
            with torch.no_grad():
                queue.copy_(torch.nn.functional.normalize(S.draw("queue", shape=tuple(queue.shape)), dim=0))

    def _passes(self, pool, level: int):
        """A pool's shuffled passes (ReplayPool.passes), each pass's order drawn for (round, level, pass)."""
        def passes(n: int):
            k = 0
            while True:
                k += 1
                perm = S.draw("subset", "pool", self.r, level, k, shape=(len(pool), len(pool)))
                for i in range(0, len(perm), n):
                    yield pool.data[perm[i:i + n]]
        return passes

    def next(self, key: str) -> int:
        self.count[key] = self.count.get(key, 0) + 1
        return self.count[key]

    def bank(self, contrast):
        bank = contrast.bank
        if bank is None or len(bank) == 0:
            return None
        k = min(contrast.negatives, len(bank))
        return bank.held()[S.draw("subset", "bank", self.r, self.next("bank"), shape=(k, len(bank)))]


class _Recorded:
    """An objective whose every evaluation is appended to `rows` (set anew each round)."""

    def __init__(self, objective):
        self._objective, self.rows = objective, []

    def __getattr__(self, name):
        return getattr(self._objective, name)

    def __call__(self, sig):
        total, parts = self._objective(sig)
        self.rows.append({**{k: float(v) for k, v in parts.items()}, "loss": float(total.detach())})
        return total, parts


@contextlib.contextmanager
def _placeholder_ood():
    """MosaicKD's out-of-domain set while the run is built: a placeholder (the Injector then puts the
    setting's batches in its streams), so a trace needs no dataset."""
    import dfkd.synthesis.mosaic as mosaic

    real = mosaic.unlabelled_split
    mosaic.unlabelled_split = lambda data, name, info: torch.utils.data.TensorDataset(
        torch.zeros(4 * S.N, S.CHANNELS, S.SIZE, S.SIZE), torch.zeros(4 * S.N))
    try:
        yield
    finally:
        mosaic.unlabelled_split = real


def run(method: str, sets: list[str], rounds: int, draws: set[str], generator: dict | None = None,
        batch: int | None = None) -> dict:
    """The trace of `method` with these config overrides, over `rounds` rounds; `generator`: the
    variant of the trace's generator (trace_setting.generator), matched by the config's source;
    `batch`: the setting's batch N for this trace (BSS: 32, so that some samples are right for both)."""
    n = S.N
    S.N = batch or n
    try:
        return _run(method, [*sets, *([f"synth.batch_size={S.N}"] if batch else [])], rounds, draws, generator)
    finally:
        S.N = n


def _run(method: str, sets: list[str], rounds: int, draws: set[str], generator: dict | None) -> dict:
    cfg: Config = build_config(method=method, sets=[*SETTING, *sets])
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # both codes run in double precision: differences are the methods'
    try:
        teacher, student, gen = S.models(**(generator or {}))
        info = dataset_info(cfg.data)
        with _placeholder_ood() if "ood" in draws else contextlib.nullcontext():
            parts = build_parts(cfg, teacher, info, torch.device("cpu"), student_module=student)
        parts.student.load_state_dict(student.state_dict())  # undo the shape check's BN updates
        synth = parts.synth
        source = getattr(synth, "shared", getattr(synth, "generator", None))
        if cfg.source.name == "dcgan":
            source.load_state_dict(gen.state_dict())  # strict: the config's source is the trace's variant
        from dfkd.synthesis.contrast import Contrast

        contrast = synth.extension(Contrast) if hasattr(synth, "extension") else None
        if contrast is not None:
            S.reset_head(contrast.head)
        loop = Distiller(cfg, parts, None, None, None, torch.device("cpu"),
                         pool=build_pool(cfg, info, torch.device("cpu"), None))
        Injector(loop, draws)
        g0 = copy.deepcopy(dict(source.named_parameters())) if source is not None else {}
        s0 = copy.deepcopy(dict(loop.student.named_parameters()))
        recorded = []
        if getattr(synth, "full_objective", None) is not None:
            synth.full_objective = synth.objective = _Recorded(synth.full_objective)
            recorded.append(synth.full_objective)
        elif synth.objective is not None:  # the real-data schedule
            synth.objective = _Recorded(synth.objective)
            recorded.append(synth.objective)
        if getattr(synth, "warmup_objective", None) is not None:
            synth.warmup_objective = _Recorded(synth.warmup_objective)
            recorded.append(synth.warmup_objective)
        loop.objective = _Recorded(loop.objective)
        student_step = loop.student_step

        def recorded_step(x, teacher):  # the self-paced weight of the step (CuDFKD), beside its loss
            parts = student_step(x, teacher)
            if "self_paced_v" in parts:
                loop.objective.rows[-1]["v"] = float(parts["self_paced_v"])
            return parts

        loop.student_step = recorded_step
        out = []
        for _ in range(rounds):
            for r in recorded + [loop.objective]:
                r.rows = []
            loop.train_round()
            source = getattr(synth, "shared", getattr(synth, "generator", None))
            gen = [row for r in recorded for row in r.rows]
            row = {"gen": gen, "student": [dict(s) for s in loop.objective.rows],
                   "student_weights": S.norms(loop.student, s0)}
            if source is not None and g0 and set(g0) == {n for n, _ in source.named_parameters()}:
                row["generator"] = S.norms(source, g0)
            out.append(row)
        return {"rounds": out}
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
