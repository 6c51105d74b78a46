"""Solving (I - alpha S) z = y for many videos at once: batched conjugate gradient with SciPy's rules, or exactly."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lanp_vad.models.config import PropagationConfig


def segment_sum(values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
    return torch.zeros(count, dtype=values.dtype, device=values.device).index_add_(0, segments, values)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    segments: torch.Tensor,
    count: int,
    *,
    rtol: float,
    maxiter: torch.Tensor,
) -> torch.Tensor:
    """CG for a block-diagonal SPD system, one independent solve per segment, with SciPy's stopping rule.

    ``matvec`` must not mix segments. Each segment starts at x = 0, stops before an iteration once
    ||r|| < rtol * ||b|| and after at most its own ``maxiter`` iterations, exactly like ``scipy.sparse.linalg.cg``.
    """
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    atol = rtol * segment_sum(rhs * rhs, segments, count).sqrt()
    direction = torch.zeros_like(rhs)
    rho_previous = torch.ones(count, dtype=rhs.dtype, device=rhs.device)
    active = torch.ones(count, dtype=torch.bool, device=rhs.device)
    for iteration in range(int(maxiter.max())):
        rho = segment_sum(residual * residual, segments, count)
        active &= (rho.sqrt() >= atol) & (iteration < maxiter)
        if not bool(active.any()):
            break
        beta = torch.where(active & (iteration > 0), rho / rho_previous.where(rho_previous > 0, 1.0), 0.0)
        direction = residual + beta[segments] * direction
        product = matvec(direction)
        curvature = segment_sum(direction * product, segments, count)
        step = torch.where(active, rho / curvature.where(curvature != 0, 1.0), 0.0)
        solution += step[segments] * direction
        residual -= step[segments] * product
        rho_previous = torch.where(active, rho, rho_previous)
    return solution


def solve(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    segments: torch.Tensor,
    lengths: list[int],
    config: PropagationConfig,
    dense_blocks: Callable[[int], torch.Tensor],
) -> torch.Tensor:
    """Solve (I - alpha S) z = y for every segment, by CG or exactly (``dense_blocks(v)`` gives S of video v).

    ``lengths`` are the videos' true lengths (SciPy's default iteration cap is 10 T).
    """
    if config.solver == "exact":
        parts = []
        for index in range(len(lengths)):
            block = dense_blocks(index).double()
            system = torch.eye(block.shape[0], dtype=torch.float64, device=block.device) - config.alpha * block
            parts.append(torch.linalg.solve(system, rhs[segments == index].double()))
        return torch.cat(parts)
    lengths_tensor = torch.tensor(lengths, device=rhs.device)
    maxiter = lengths_tensor * 10 if config.cg_maxiter is None else torch.full_like(lengths_tensor, config.cg_maxiter)
    return conjugate_gradient(
        lambda p: p - config.alpha * matvec(p), rhs, segments, len(lengths), rtol=config.cg_tol, maxiter=maxiter
    )
