"""The specimen suite: 3-D particles with known partial densities (issue 13).

>>> from chemtomo.simulate.specimens import SPECIMENS, make_specimen, simulate_series
>>> spec = make_specimen("core_shell", n=32, oversampling=2, seed=0)       # doctest: +SKIP
>>> sim = simulate_series(spec, np.arange(-70, 71, 5.0), dose_scale=0.1, beam_kev=200.0)  # doctest: +SKIP

Every builder is ``builder(n, oversampling=2, seed=0, *, field_nm=None, supersample=2)``:
``n`` reconstruction voxels across a cubic field of ``field_nm`` (each specimen has a
physical default), a fine grid ``oversampling`` times finer, ``seed`` for the small
random placements (core offset, orientation, pores, satellites). Units: nm,
g/cm^3; doses in :func:`simulate_series` are electrons per beam position (and per
nm^2 in the series' metadata). The mixing rule is
:data:`chemtomo.simulate.specimen_model.MIXING_RULE`.

Regions are labelled at the reconstruction voxel centres, disjoint by construction;
``interface`` regions are the voxels within about one voxel of an internal boundary.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from .specimen_model import (
    COMPOUNDS,
    MIXING_RULE,
    Specimen,
    alloy_partials,
    build_specimen,
    compound_fractions,
    material,
)
from .specimen_series import (
    DEFAULT_LINES,
    SpecimenSimulation,
    lines_for,
    simulate_series,
)

__all__ = [
    "CALIBRATION", "COMPOUNDS", "DEFAULT_LINES", "MIXING_RULE", "SPECIMENS", "Specimen",
    "SpecimenSimulation", "lines_for", "make_specimen", "simulate_series",
]


# -- geometry helpers: points are (y, z, x) arrays in nm -------------------------------------

def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A rotation of (y, z, x) by up to ``max_deg`` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    t = np.deg2rad(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K


def _rot_y(deg: float) -> np.ndarray:
    """Rotation about the tilt axis y, acting on (y, z, x)."""
    t = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


def _dist(y, z, x, c) -> np.ndarray:
    return np.sqrt((y - c[0]) ** 2 + (z - c[1]) ** 2 + (x - c[2]) ** 2)


def _ellipsoid_sdf(y, z, x, c, axes, R=None) -> np.ndarray:
    """Approximate signed distance (nm) to an ellipsoid (exact for a sphere): (sqrt(q) - 1) min(axes)."""
    d = np.stack([y - c[0], z - c[1], x - c[2]])
    u = d if R is None else np.tensordot(R.T, d, axes=1)
    q = sum((u[i] / axes[i]) ** 2 for i in range(3))
    return (np.sqrt(q) - 1) * min(axes)


def _labels(*masks) -> np.ndarray:
    """Label array from masks in priority order (earlier masks win; 0 where none)."""
    out = np.zeros(masks[0].shape, np.int8)
    for i, m in enumerate(masks):
        out[(out == 0) & m] = i + 1
    return out


def _bands(part, d) -> np.ndarray:
    """Labels inside ``part`` by ``d``, a signed distance in voxels: 1 below -1, 2 within +-1, 3 above 1."""
    return _labels(part & (d < -1), part & (np.abs(d) <= 1), part & (d > 1))


def _vec(parts, shape_like):
    """Broadcast (k,) material vectors times masks: sum of outer products."""
    return sum(np.multiply.outer(v, m.astype(np.float64)) for v, m in parts) + np.zeros((1,) + shape_like.shape)


def _field(field_nm, default):
    return float(default if field_nm is None else field_nm)


# -- the suite ---------------------------------------------------------------------------

def core_shell(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
               supersample: int = 2) -> Specimen:
    """The paper's sharp Ag/Au core-shell particle in 3-D (Yuan 2020, Fig. 1).

    An ellipsoid (semi-axes 54, 46, 50 nm in a 145.5 nm field, rotated 20 deg about
    the tilt axis plus up to 10 deg at random) of shell 80 wt% Ag / 20 wt% Au holding
    an off-centre sphere (radius 27 nm) of core 20 / 80. Regions: core, interface
    (within 1 voxel of the core boundary), shell.
    """
    L = _field(field_nm, 145.5)
    s = L / 145.5
    rng = np.random.default_rng(seed)
    R = _rot_y(20.0) @ _rotation(rng, 10.0)
    axes = (50.0 * s, 46.0 * s, 54.0 * s)
    cc = np.array([4.0, -5.0, 6.0]) * s + rng.uniform(-3, 3, 3) * s
    rc = 27.0 * s
    els = ["Ag", "Au"]
    m_core, m_shell = material(els, {"Ag": 0.2, "Au": 0.8}), material(els, {"Ag": 0.8, "Au": 0.2})
    px = L / n

    def model(y, z, x):
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        core = (_dist(y, z, x, cc) <= rc) & part
        return _vec([(m_core, core), (m_shell, part & ~core)], y), part.astype(np.float64)

    def labels(y, z, x):
        d = (_dist(y, z, x, cc) - rc) / px
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        return _bands(part, d)

    return build_specimen(
        "core_shell", els, model, labels, ["core", "interface", "shell"], n, oversampling, seed, L,
        supersample=supersample,
        description="Sharp Ag/Au core-shell ellipsoid; core Ag20Au80 (wt), shell Ag80Au20.",
        tests="the paper's case in 3-D: sharp interface, region means of core and shell",
        params={"core_radius_nm": rc, "core_centre_nm": cc.tolist(), "semi_axes_nm": list(axes)},
    )


def diffuse_alloy(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
                  supersample: int = 2) -> Specimen:
    """An Ag-Au alloy particle with a diffuse radial composition gradient.

    Near-spherical ellipsoid (semi-axes 0.72-0.78 of the half field, 60 nm field);
    ``C_Au = 0.15 + 0.7 erfc((r - r0)/w)/2 + 0.05 x'/H`` with r0 = 0.45 H, w = 0.15 H
    (a smooth core-to-shell gradient several voxels wide) and a weak linear gradient
    along a random direction x'. Regions: core (r < r0 - w), interface, shell (r > r0 + w).
    """
    L = _field(field_nm, 60.0)
    H = L / 2
    rng = np.random.default_rng(seed)
    R = _rotation(rng, 30.0)
    axes = (0.75 * H, 0.72 * H, 0.78 * H)
    r0, w = 0.45 * H, 0.15 * H
    g = rng.normal(size=3)
    g /= np.linalg.norm(g)
    els = ["Ag", "Au"]

    def model(y, z, x):
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        r = np.sqrt(y * y + z * z + x * x)
        au = np.clip(0.15 + 0.35 * erfc((r - r0) / w) + 0.05 * (g[0] * y + g[1] * z + g[2] * x) / H, 0, 1)
        frac = np.stack([1 - au, au])
        return alloy_partials(frac, els) * part, part.astype(np.float64)

    def labels(y, z, x):
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        r = np.sqrt(y * y + z * z + x * x)
        return _labels(part & (r < r0 - w), part & (np.abs(r - r0) <= w), part & (r > r0 + w))

    return build_specimen(
        "diffuse_alloy", els, model, labels, ["core", "interface", "shell"], n, oversampling, seed, L,
        supersample=supersample,
        description="Ag-Au alloy with an erfc radial gradient (Au-rich core to Ag-rich shell).",
        tests="smooth composition fields: TV's piecewise-constant bias, gradient recovery",
        params={"r0_nm": r0, "width_nm": w, "gradient_direction": g.tolist()},
    )


def small_core(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
               supersample: int = 2) -> Specimen:
    """A small Au core, an Ag layer and a thin (2.5-voxel) Au-rich outer shell.

    Sphere of radius 0.75 H (48 nm field); core Au97Ag3 of radius 2-3 voxels
    (n/12 clipped to 2..3), slightly off-centre; middle Ag90Au10; outer shell Au80Ag20 2.5 voxels thick.
    Regions: core, interface (around the core boundary), middle, shell.
    """
    L = _field(field_nm, 48.0)
    H, px = L / 2, L / n
    rng = np.random.default_rng(seed)
    rp = 0.75 * H
    rc = float(np.clip(n / 12, 2, 3)) * px  # 2 voxels at n = 20, 3 from n = 36
    t = 2.5 * px
    cc = rng.uniform(-1, 1, 3) * 0.04 * H
    els = ["Ag", "Au"]
    m_core, m_mid, m_shell = (material(els, c) for c in
                              ({"Au": 0.97, "Ag": 0.03}, {"Ag": 0.9, "Au": 0.1}, {"Au": 0.8, "Ag": 0.2}))

    def model(y, z, x):
        r = np.sqrt(y * y + z * z + x * x)
        part = r <= rp
        core = _dist(y, z, x, cc) <= rc
        shell = part & (r > rp - t) & ~core
        return _vec([(m_core, core), (m_shell, shell), (m_mid, part & ~core & ~shell)], y), part.astype(float)

    def labels(y, z, x):
        r = np.sqrt(y * y + z * z + x * x)
        d = (_dist(y, z, x, cc) - rc) / px
        part = r <= rp
        return _labels(d < -0.5, part & (d <= 1), part & (r < rp - t - 0.5 * px), part & (r >= rp - t))

    return build_specimen(
        "small_core", els, model, labels, ["core", "interface", "middle", "shell"], n, oversampling, seed, L,
        supersample=supersample,
        description="Small Au97Ag3 core, Ag90Au10 layer, 2.5-voxel Au80Ag20 outer shell.",
        tests="small features: smoothing bias of filters and regularisers on a few-voxel core and shell",
        params={"particle_radius_nm": rp, "core_radius_nm": rc, "shell_thickness_nm": t,
                "core_centre_nm": cc.tolist()},
    )


def oxide_supported(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
                    supersample: int = 2) -> Specimen:
    """A Pt particle on an Al2O3 support grain, with three small Pt satellites.

    Support: ellipsoid (semi-axes 0.8, 0.45, 0.85 H, centre 0.35 H below the middle
    along z) of corundum Al2O3 (3.987 g/cm^3); Pt sphere of radius 0.38 H resting on
    it (the overlap is support); three Pt clusters of 2-voxel radius on the support
    surface. 60 nm field. Regions: metal, interface (the contact), support.
    """
    L = _field(field_nm, 60.0)
    H, px = L / 2, L / n
    rng = np.random.default_rng(seed)
    sc, saxes = np.array([0.0, 0.35 * H, 0.0]), (0.8 * H, 0.45 * H, 0.85 * H)
    pc = np.array([rng.uniform(-0.1, 0.1) * H, -0.28 * H, rng.uniform(-0.1, 0.1) * H])
    rpt = 0.38 * H
    rs = 2.0 * px
    sat = []
    for _ in range(3):  # on the support's upper surface, away from the big particle and each other
        for _attempt in range(1000):
            yx = rng.uniform(-0.7, 0.7, 2) * H
            if np.hypot(yx[0] - pc[0], yx[1] - pc[2]) > rpt + rs + 2 * px and all(
                    np.hypot(yx[0] - c[0], yx[1] - c[2]) > 2 * rs + px for c in sat):
                break
        zs = sc[1] - saxes[1] * np.sqrt(max(0.0, 1 - (yx[0] / saxes[0]) ** 2 - (yx[1] / saxes[2]) ** 2))
        sat.append(np.array([yx[0], zs, yx[1]]))
    els = ["Al", "O", "Pt"]
    m_sup, m_pt = material(els, "Al2O3"), material(els, {"Pt": 1.0})

    def model(y, z, x):
        sup = _ellipsoid_sdf(y, z, x, sc, saxes) <= 0
        pt = (_dist(y, z, x, pc) <= rpt) & ~sup
        for c in sat:
            pt |= (_dist(y, z, x, c) <= rs) & ~sup
        return _vec([(m_sup, sup), (m_pt, pt)], y), (sup | pt).astype(float)

    def labels(y, z, x):
        ds = _ellipsoid_sdf(y, z, x, sc, saxes) / px
        dp = (_dist(y, z, x, pc) - rpt) / px
        near_sat = np.zeros(y.shape, bool)
        for c in sat:
            near_sat |= _dist(y, z, x, c) <= rs + px
        metal = ~near_sat & (dp < 0) & (ds > 1)
        contact = ~near_sat & (dp <= 1) & (np.abs(ds) <= 1) & ((ds <= 0) | (dp <= 0))
        return _labels(metal, contact, ~near_sat & (ds < -1) & (dp > 1))

    return build_specimen(
        "oxide_supported", els, model, labels, ["metal", "interface", "support"], n, oversampling, seed, L,
        supersample=supersample,
        description="Pt particle and three 2-voxel Pt satellites on an Al2O3 (corundum) support.",
        tests="light (Al, O) beside heavy (Pt): HAADF dominated by Pt, weak O/Al signals, small clusters",
        params={"pt_centre_nm": pc.tolist(), "pt_radius_nm": rpt, "satellites_nm": [c.tolist() for c in sat],
                "support_centre_nm": sc.tolist(), "support_semi_axes_nm": list(saxes),
                "support": {"compound": "Al2O3", "fractions": compound_fractions("Al2O3"),
                            "density_g_cm3": COMPOUNDS["Al2O3"][1]}},
    )


def janus(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
          supersample: int = 2) -> Specimen:
    """A segregated Ag-Cu Janus (acorn) particle: two overlapping lobes split by a plane.

    Ag95Cu5 lobe (radius 0.55 H) and Cu90Ag10 lobe (radius 0.45 H) along a random
    axis, split at the plane of their intersection circle. 50 nm field. Regions:
    ag_side, interface (within 1 voxel of the plane), cu_side.
    """
    L = _field(field_nm, 50.0)
    H, px = L / 2, L / n
    rng = np.random.default_rng(seed)
    a = rng.normal(size=3)
    a /= np.linalg.norm(a)
    ca, cb, ra, rb = -0.22 * H * a, 0.3 * H * a, 0.55 * H, 0.45 * H
    dab = 0.52 * H
    p0 = (dab**2 + ra**2 - rb**2) / (2 * dab) - 0.22 * H  # plane offset along a from the origin
    els = ["Ag", "Cu"]
    m_ag, m_cu = material(els, {"Ag": 0.95, "Cu": 0.05}), material(els, {"Cu": 0.9, "Ag": 0.1})

    def split(y, z, x):
        part = (_dist(y, z, x, ca) <= ra) | (_dist(y, z, x, cb) <= rb)
        return part, (a[0] * y + a[1] * z + a[2] * x - p0)

    def model(y, z, x):
        part, d = split(y, z, x)
        return _vec([(m_ag, part & (d < 0)), (m_cu, part & (d >= 0))], y), part.astype(float)

    def labels(y, z, x):
        part, d = split(y, z, x)
        d = d / px
        return _bands(part, d)

    return build_specimen(
        "janus", els, model, labels, ["ag_side", "interface", "cu_side"], n, oversampling, seed, L,
        supersample=supersample,
        description="Ag-Cu Janus acorn: Ag95Cu5 and Cu90Ag10 lobes split by a plane.",
        tests="segregation across a planar interface at a random orientation to the tilt axis",
        params={"axis": a.tolist(), "plane_offset_nm": p0},
    )


def hollow(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
           supersample: int = 2) -> Specimen:
    """A porous Au-Ag nanocage: hollow sphere, Ag-rich inner and Au-rich outer wall, pores.

    Outer radius 0.75 H, cavity radius 0.42 H (off-centre by up to 0.05 H), wall
    split at 0.6 H into Ag75Au25 (inner) and Au70Ag30 (outer); six spherical pores of
    radius max(1.5 voxels, 0.08 H) through the wall at random directions. 80 nm
    field. Regions: inner_wall, interface, outer_wall (voxels near pores excluded).
    """
    L = _field(field_nm, 80.0)
    H, px = L / 2, L / n
    rng = np.random.default_rng(seed)
    ro, rm = 0.75 * H, 0.6 * H
    cc = rng.uniform(-1, 1, 3) * 0.05 * H
    ri = 0.42 * H
    rpore = max(1.5 * px, 0.08 * H)
    dirs = rng.normal(size=(6, 3))
    pores = dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * rm
    els = ["Ag", "Au"]
    m_in, m_out = material(els, {"Ag": 0.75, "Au": 0.25}), material(els, {"Au": 0.7, "Ag": 0.3})

    def parts(y, z, x):
        r = np.sqrt(y * y + z * z + x * x)
        pore_d = np.min([_dist(y, z, x, p) for p in pores], axis=0) - rpore
        wall = (r <= ro) & (_dist(y, z, x, cc) > ri) & (pore_d > 0)
        return r, wall, pore_d

    def model(y, z, x):
        r, wall, _ = parts(y, z, x)
        return _vec([(m_in, wall & (r < rm)), (m_out, wall & (r >= rm))], y), wall.astype(float)

    def labels(y, z, x):
        r, wall, pore_d = parts(y, z, x)
        ok = wall & (pore_d > px)
        d = (r - rm) / px
        return _labels(ok & (d < -0.5), ok & (np.abs(d) <= 0.5), ok & (d > 0.5))

    return build_specimen(
        "hollow", els, model, labels, ["inner_wall", "interface", "outer_wall"], n, oversampling, seed, L,
        supersample=supersample,
        description="Porous Au-Ag nanocage: hollow sphere, Ag75Au25 inner / Au70Ag30 outer wall, 6 pores.",
        tests="empty interior and pores (zero density inside the outline), thin two-layer wall",
        params={"outer_radius_nm": ro, "cavity_radius_nm": ri, "cavity_centre_nm": cc.tolist(),
                "layer_radius_nm": rm, "pore_radius_nm": rpore, "pores_nm": pores.tolist()},
    )


def ternary_gradient(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
                     supersample: int = 2) -> Specimen:
    """A Ni-Pd-Pt particle with smooth composition gradients in three elements.

    Ellipsoid (semi-axes 0.65-0.72 H, 50 nm field); un-normalised amounts
    Pt: 0.15 + 0.6 exp(-r^2 / 2 (0.35 H)^2), Ni: 0.1 + 0.4 sigmoid(x'/0.25 H) along a
    random direction x', Pd: 0.3; fractions are their normalised values. Regions:
    core (r < 0.25 H), interface (0.25-0.45 H), shell (r > 0.45 H).
    """
    L = _field(field_nm, 50.0)
    H = L / 2
    rng = np.random.default_rng(seed)
    R = _rotation(rng, 30.0)
    axes = (0.7 * H, 0.65 * H, 0.72 * H)
    g = rng.normal(size=3)
    g /= np.linalg.norm(g)
    els = ["Ni", "Pd", "Pt"]

    def model(y, z, x):
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        r2 = y * y + z * z + x * x
        pt = 0.15 + 0.6 * np.exp(-r2 / (2 * (0.35 * H) ** 2))
        ni = 0.1 + 0.4 / (1 + np.exp(-(g[0] * y + g[1] * z + g[2] * x) / (0.25 * H)))
        pd = np.full_like(pt, 0.3)
        raw = np.stack([ni, pd, pt])
        return alloy_partials(raw / raw.sum(axis=0), els) * part, part.astype(float)

    def labels(y, z, x):
        part = _ellipsoid_sdf(y, z, x, (0, 0, 0), axes, R) <= 0
        r = np.sqrt(y * y + z * z + x * x)
        return _labels(part & (r < 0.25 * H), part & (r <= 0.45 * H), part)

    return build_specimen(
        "ternary_gradient", els, model, labels, ["core", "interface", "shell"], n, oversampling, seed, L,
        supersample=supersample,
        description="Ni-Pd-Pt particle: Pt-rich centre, Ni gradient across, smooth everywhere.",
        tests="three elements with smooth gradients (the issue's svmbir comparison case)",
        params={"gradient_direction": g.tolist()},
    )


def sphere(n: int, oversampling: int = 2, seed: int = 0, *, field_nm: float | None = None,
           supersample: int = 2, radius_frac: float = 0.6, inner_frac: float = 0.0,
           centre_frac: tuple[float, float, float] = (0.1, 0.2, -0.15)) -> Specimen:
    """Calibration: a homogeneous Ag50Au50 sphere (or a spherical shell with ``inner_frac`` > 0).

    Radius ``radius_frac`` H, centre ``centre_frac`` H (y, z, x), 40 nm field; its
    parallel projection is analytic: ``rho (2 sqrt(R^2 - t^2) - 2 sqrt(Ri^2 - t^2))``.
    Regions: matter (the voxels whose centre is inside).
    """
    L = _field(field_nm, 40.0)
    H = L / 2
    c, r, ri = np.asarray(centre_frac) * H, radius_frac * H, inner_frac * H
    if not 0 <= ri < r or np.linalg.norm(c[1:]) + r >= H:
        raise ValueError(f"need 0 <= inner_frac < radius_frac and the sphere inside the field, got "
                         f"radius_frac={radius_frac}, inner_frac={inner_frac}, centre_frac={centre_frac}")
    els = ["Ag", "Au"]
    m = material(els, {"Ag": 0.5, "Au": 0.5})

    def model(y, z, x):
        d = _dist(y, z, x, c)
        inside = (d <= r) & (d > ri)
        return _vec([(m, inside)], y), inside.astype(float)

    def labels(y, z, x):
        d = _dist(y, z, x, c)
        return _labels((d <= r) & (d > ri))

    return build_specimen(
        "spherical_shell" if ri > 0 else "sphere", els, model, labels, ["matter"], n, oversampling, seed, L,
        supersample=supersample, description="Homogeneous Ag50Au50 sphere/shell (calibration).",
        tests="the projection against the analytic chord",
        params={"centre_nm": c.tolist(), "radius_nm": r, "inner_radius_nm": ri,
                "density_g_cm3": float(m.sum())},
    )


def spherical_shell(n: int, oversampling: int = 2, seed: int = 0, **kw) -> Specimen:
    """Calibration: a homogeneous spherical shell (inner radius 0.35 H, outer 0.6 H)."""
    return sphere(n, oversampling, seed, **{"inner_frac": 0.35, **kw})


#: The suite: name -> builder ``(n, oversampling=2, seed=0, *, field_nm=None, supersample=2)``.
SPECIMENS = {
    "core_shell": core_shell,
    "diffuse_alloy": diffuse_alloy,
    "small_core": small_core,
    "oxide_supported": oxide_supported,
    "janus": janus,
    "hollow": hollow,
    "ternary_gradient": ternary_gradient,
}

#: Calibration specimens with analytic projections (not part of the suite).
CALIBRATION = {"sphere": sphere, "spherical_shell": spherical_shell}


def make_specimen(name: str, n: int = 64, oversampling: int = 2, seed: int = 0, **kw) -> Specimen:
    """Build specimen ``name`` of :data:`SPECIMENS` (or :data:`CALIBRATION`).

    Parameters
    ----------
    name : str
    n : int
        Reconstruction voxels across the field (the suite uses 20-80).
    oversampling : int
        Fine voxels per reconstruction voxel along each axis (>= 2).
    seed : int
        Seed of the specimen's random placements.
    **kw
        ``field_nm`` (field width, nm), ``supersample`` (points per fine voxel
        along each axis), and calibration options.
    """
    builder = SPECIMENS.get(name) or CALIBRATION.get(name)
    if builder is None:
        raise ValueError(f"unknown specimen {name!r}; known: {sorted(SPECIMENS)} and calibration "
                         f"{sorted(CALIBRATION)}")
    return builder(n, oversampling, seed, **kw)
