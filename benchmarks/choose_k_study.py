"""Which rule chooses k right? Synthetic scenarios where the true k is known.

For each scenario and seed, prints the k chosen by each rule of :func:`medcl.cluster.choose_k`
(spectral partitions; the elbow is UFC's Ward-curve knee) and whether it is right. The
scenarios imitate L2-normalised latents: groups on the unit sphere in 32-d, with unequal
sizes, spreads, unbalanced classes, a close pair, curved groups, and no structure at all.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/choose_k_study.py [--seeds 0 1 2]
        [--rules stability eigengap] [--stability mean_jaccard@0.9/16 worst_jaccard@0.6/16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medcl.cluster import choose_k


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def blobs_on_sphere(sizes, spreads, seed: int, dim: int = 32, close: float | None = None):
    """Gaussian groups around random unit centres, projected onto the sphere.

    ``close``: if given, centre 1 is moved to angle-distance ``close`` (radians) from centre 0.
    """
    rng = np.random.default_rng(seed)
    k = len(sizes)
    centres = _unit(rng.normal(size=(k, dim)))
    if close is not None:
        u = centres[1] - centres[1] @ centres[0] * centres[0]
        centres[1] = np.cos(close) * centres[0] + np.sin(close) * _unit(u)
    truth = np.repeat(np.arange(k), sizes)
    spread = np.broadcast_to(np.asarray(spreads, dtype=float), (k,))[truth]  # one or per group
    x = centres[truth] + rng.normal(size=(len(truth), dim)) * spread[:, None] / np.sqrt(dim)
    return _unit(x), truth, k


def rings_on_sphere(seed: int, n_rings: int = 4, per_ring: int = 250, noise: float = 0.03):
    """Latitude rings on the 2-sphere (in 3-d): curved groups no convex partition follows."""
    rng = np.random.default_rng(seed)
    heights = np.linspace(-0.75, 0.75, n_rings)
    truth = np.repeat(np.arange(n_rings), per_ring)
    phi = rng.uniform(0, 2 * np.pi, len(truth))
    z = heights[truth] + rng.normal(0, noise, len(truth))
    r = np.sqrt(np.clip(1 - z**2, 0, None))
    return _unit(np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)), truth, n_rings


def sub_modes(sizes, spread: float, seed: int, dim: int = 32):
    """Ten classes, one of them two sub-modes (two styles of one digit) 0.5 rad apart: 10
    and 11 are both right (11 keeps every class apart and costs one spare cluster)."""
    x, truth, _ = blobs_on_sphere(list(sizes) + [sizes[0]], [spread] * 11, seed, dim, close=0.5)
    truth = np.where(truth == 1, 0, truth)
    return x, truth, (10, 11)


def uniform_sphere(seed: int, n: int = 1500, dim: int = 32):
    rng = np.random.default_rng(seed)
    return _unit(rng.normal(size=(n, dim))), np.zeros(n, dtype=int), 1


def scenarios(seed: int):
    rng = np.random.default_rng(1000 + seed)
    s = 0.7  # noise norm per point; cosine silhouette ~0.3, like the MNIST latents
    mnist = rng.integers(363, 628, size=10)
    cut = mnist.copy()
    cut[[3, 8]] = (cut[[3, 8]] * rng.uniform(0.4, 0.7, 2)).astype(int)
    yield "equal (10 x 200)", blobs_on_sphere([200] * 10, [s] * 10, seed)
    yield "sizes 3-5x (10)", blobs_on_sphere(np.linspace(80, 360, 10).astype(int), [s] * 10, seed)
    yield "spreads 0.45-0.9 (10)", blobs_on_sphere([200] * 10, np.linspace(0.45, 0.9, 10), seed)
    yield "unbalanced, 2 cut (10)", blobs_on_sphere(cut // 2, [s] * 10, seed)
    yield "close pair (10)", blobs_on_sphere([200] * 10, [s] * 10, seed, close=0.55)
    yield "close pair, unbal. (10)", blobs_on_sphere(mnist // 2, [s] * 10, seed, close=0.55)
    hard = 1.05  # cosine silhouette ~0.35 at the true k, close to the MNIST latents' 0.26
    yield "MNIST-like unbal. (10)", blobs_on_sphere(mnist // 2, [hard] * 10, seed, dim=64)
    yield "MNIST-like close (10)", blobs_on_sphere(mnist // 2, [hard] * 10, seed, dim=64, close=0.6)
    yield (
        "MNIST-like noisier (10)",
        blobs_on_sphere(mnist // 2, [1.25] * 10, seed, dim=64, close=0.6),
    )
    yield "sub-modes (10 or 11)", sub_modes(mnist // 2, s, seed)
    yield "rings on S2 (4)", rings_on_sphere(seed)
    yield "no structure (1)", uniform_sphere(seed)


RULES = ("elbow", "silhouette", "silhouette_tol", "eigengap", "stability")


def _columns(rules, stability_specs) -> dict[str, dict]:
    """Column name -> choose_k keyword arguments: each rule with its defaults, then each
    stability variant ``SCORE@THRESHOLD/N_RESAMPLES`` (e.g. ``mean_jaccard@0.9/16``)."""
    cols = {r: {"rule": r} for r in rules}
    for spec in stability_specs:
        score, rest = spec.split("@")
        threshold, n_resamples = rest.split("/")
        cols[spec] = {
            "rule": "stability",
            "score": score,
            "threshold": float(threshold),
            "n_resamples": int(n_resamples),
        }
    return cols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--method", default="spectral")
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name starts so")
    parser.add_argument("--rules", nargs="*", default=list(RULES), help="choose_k rules")
    parser.add_argument(
        "--stability",
        nargs="*",
        default=[],
        metavar="SCORE@THRESHOLD/N",
        help="stability variants to add, e.g. mean_jaccard@0.9/16",
    )
    args = parser.parse_args()
    cols = _columns(args.rules, args.stability)
    print(f"method={args.method}; k searched 2..20; cell = chosen k (* = right)")
    print(f"{'scenario':26s} seed " + " ".join(f"{r:>20s}" for r in cols) + "  plausible")
    right = {r: 0 for r in cols}
    total = 0
    t0 = time.time()
    for seed in args.seeds:
        for name, (x, _, k_true) in scenarios(seed):
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            total += 1
            accept = k_true if isinstance(k_true, tuple) else (k_true,)
            cells, plausible = [], ""
            for col, kw in cols.items():
                c = choose_k(x, range(2, 21), method=args.method, seed=seed, **kw)
                stab = kw["rule"] == "stability"
                ok = c.k in accept or (k_true == 1 and stab and not c.confident)
                right[col] += ok
                mark = "*" if ok else " "
                extra = "" if c.confident else "?"
                cells.append(f"{c.k:>18d}{extra:1s}{mark}")
                if stab and not plausible:
                    plausible = f"{c.plausible[0]}..{c.plausible[-1]}" if c.confident else "none"
            print(f"{name:26s} {seed:4d} " + " ".join(cells) + f"  {plausible}", flush=True)
    print(f"{'right':31s} " + " ".join(f"{right[r]:>17d}/{total:<2d}" for r in cols))
    print(f"({time.time() - t0:.0f} s; '?' = stability found no k it trusts)")


if __name__ == "__main__":
    main()
