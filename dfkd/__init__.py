"""dfkd — data-free and adversarial knowledge distillation.

Every method = input source × schedule × weighted objective × views, run by one loop
(see docs/design.md and `dfkd.run.loop`). The Python API (`dfkd.api`):

    import dfkd
    run = dfkd.distill(teacher=model, student="resnet20", method="dfq", data="cifar10")
    dfkd.train_teacher(...), dfkd.load_model(path), dfkd.InputSpec(...), dfkd.DfkdError
"""
__version__ = "0.1.0"

_API = {"distill", "train_teacher", "load_model", "InputSpec", "Run", "infer_spec"}
__all__ = sorted(_API | {"DfkdError", "NonFiniteError", "__version__"})


def __getattr__(name):  # lazy: `import dfkd` stays cheap for the CLI and for setup tools
    if name in _API:
        from dfkd import api

        return getattr(api, name)
    if name in ("DfkdError", "NonFiniteError"):
        from dfkd.base import errors

        return getattr(errors, name)
    import importlib

    try:  # a submodule: dfkd.tables.results, dfkd.methods, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'dfkd' has no attribute '{name}'") from None
