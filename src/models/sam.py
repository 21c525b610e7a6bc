"""`--optimizer adam-sam` (TCaF, ClipClap): Sharpness-Aware Minimization (Foret et al., ICLR 2021)
around Adam, as the original code has it (`SAM(self.parameters(), optim.Adam, lr=lr,
weight_decay=1e-5)`, in the form of the common public implementation).

One step on a batch (the trainer's, `src.steps.sam_step`, when the optimiser is a `SAM`):

    BatchNorm momenta back to their saved values       ("enable running stats")
    loss(w) -> g = ∇loss(w)                             the logged loss is this one
    first_step:  e = rho · g / ‖g‖;  w <- w + e         ‖g‖ = L2 norm of the per-parameter L2 norms
    BatchNorm momenta saved, then set to 0              ("disable running stats")
    loss(w + e) -> g' = ∇loss(w + e)                    same batch; running statistics do not move
    second_step: w <- w - e;  Adam step with g'         (the weights it starts from are w again)

rho: the original's value is not in its stored sources; 0.05 is the public implementation's default
[assumption]. `adaptive` (ASAM) scales by |w| as that implementation does (off, as in the original).
"""
from typing import Callable

import torch
from torch import Tensor, nn

DEFAULT_RHO = 0.05      # [assumption] the public SAM implementation's default; not visible in the original


class SAM(torch.optim.Optimizer):
    """SAM around `base_optimizer(param_groups, **kwargs)` (e.g. `adam`); the parameter groups are
    the base optimiser's own (they carry `rho` and `adaptive` too), so a scheduler on the base
    optimiser and `param_groups[0]["lr"]` here see the same learning rate.

    `state_dict()` is the base optimiser's (its Adam moments and groups): a checkpoint or resume
    state saved from a SAM loads into a SAM built the same way. The perturbation e lives only
    between `first_step` and `second_step` and is not saved.
    """

    def __init__(self, params, base_optimizer: Callable[..., torch.optim.Optimizer], rho: float = DEFAULT_RHO,
                 adaptive: bool = False, **kwargs):
        if rho < 0.0:
            raise ValueError(f"SAM: rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def grad_norm(self) -> Tensor:
        """‖ (‖g_p‖₂ for each parameter p with a gradient) ‖₂; with `adaptive`, of |p| · g_p."""
        device = self.param_groups[0]["params"][0].device
        return torch.stack([((p.abs() if group["adaptive"] else 1.0) * p.grad).norm(p=2).to(device)
                            for group in self.param_groups for p in group["params"]
                            if p.grad is not None]).norm(p=2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """w <- w + e, e = rho · g / (‖g‖ + 1e-12) (adaptive: rho · p² · g / (‖|p| · g‖ + 1e-12))."""
        grad_norm = self.grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = (p * p if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                p.add_(e_w)
                self.state[p]["e_w"] = e_w
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """w <- w - e (every parameter the first step moved), then the base optimiser's step with
        the gradient computed at w + e."""
        for group in self.param_groups:
            for p in group["params"]:
                e_w = self.state[p].pop("e_w", None)
                if e_w is not None:
                    p.sub_(e_w)
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure=None):
        """The whole SAM step: `closure` re-evaluates the loss with gradients (forward and backward)."""
        if closure is None:
            raise ValueError("SAM.step needs a closure (forward and backward); or call first_step and second_step")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """The base optimiser's state; the groups are shared with it again (loading replaces them)."""
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


def _batchnorms(model: nn.Module):
    return (m for m in model.modules() if isinstance(m, nn.BatchNorm1d))


def disable_running_stats(model: nn.Module) -> None:
    """Every BatchNorm1d's momentum saved, then 0: a train-mode pass normalises by the batch but
    leaves the running statistics as they are."""
    for bn in _batchnorms(model):
        bn.backup_momentum = bn.momentum
        bn.momentum = 0


def enable_running_stats(model: nn.Module) -> None:
    """Every BatchNorm1d's momentum back to its saved value (where one was saved)."""
    for bn in _batchnorms(model):
        if hasattr(bn, "backup_momentum"):
            bn.momentum = bn.backup_momentum

