"""dfkd — data-free and adversarial knowledge distillation.

Every method = input source × schedule × weighted objective × views, run by one loop
(see DESIGN.md and `dfkd.distiller`).
"""
__version__ = "0.1.0"
