r"""timm's Muon family: Newton-Schulz orthogonalised momentum with an AdamW/NAdamW fallback
(``muon``, ``nmuon``, ``adamuon``, ``nadamuon``).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any

from .._hyper import BETAS, EPS, LR, NONNEG, Hyperparams, OneOf, Range, hyperfield
from .._lowp import round_to_bfloat16
from .._registry import OptimInfo, register
from .._xp import blockwise_, increment_step, l2_norm, lerp, lerp_, like, new_step, zeros_like
from .adamw_legacy import adamw_legacy_kernel
from .nadamw import nadamw_kernel

__all__ = ["MuonHyperparams", "NS_COEFFICIENTS", "zeropower_via_newtonschulz", "round_to_bfloat16",
           "is_suitable_for_muon", "resolve_ns_coefficients"]

#: timm's Newton-Schulz coefficient presets (``timm.optim.muon._COEFFICIENTS``), one (a, b, c) per iteration.
NS_COEFFICIENTS: dict[str, tuple[tuple[float, float, float], ...]] = {
    # Keller Jordan's Muon
    "original": ((3.4445, -4.7750, 2.0315),),
    # leloykun / modded-nanogpt train_gpt_medium.py
    "quintic": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    # Polar Express (arXiv:2505.16932), safety 1e-2
    "polar_express": (
        (8.237312490495555, -23.157747414558198, 16.680568411445915),
        (4.082441999064835, -2.893047735332586, 0.5252849256975648),
        (3.9263479922546582, -2.8547468034765298, 0.5318022422894988),
        (3.2982187133085143, -2.424541981026706, 0.48632008358844075),
        (2.2970369434552573, -1.63662558125903, 0.4002628455953627),
        (1.8763805351440397, -1.2347896577722228, 0.35891887501668385),
        (1.8564423485617974, -1.2132449880935525, 0.3568003487825883),
        (1.8749994008682747, -1.2499988017229169, 0.3749994008546422),
    ),
    # modded-nanogpt train_gpt.py, safety 2e-2
    "polar_express_safer": (
        (8.156554524902461, -22.48329292557795, 15.878769915207462),
        (4.0429299351667245, -2.808917465908704, 0.5000178451051299),
        (3.8916678022926563, -2.7724841532176825, 0.5060648178503389),
        (3.285753657755658, -2.3681294933425394, 0.46449024233003117),
        (2.3005307116270983, -1.6111665557258408, 0.3833374427545273),
        (1.8631210546382593, -1.2042160621002727, 0.3421879560523383),
        (1.8382572152247512, -1.1779263289537742, 0.3396513038637379),
        (1.8749999923301852, -1.2499999836060613, 0.374999991275876),
    ),
}

_MUON_LR_FNS = ("original", "match_rms_adamw", "rms_to_rms")
_ADAMUON_LR_FNS = ("match_rms_adamw", "rms_to_rms", "rsqrt_in")
_NS_DTYPES = (None, "bfloat16", "float32", "float64")


def resolve_ns_coefficients(value: Any) -> tuple[tuple[float, float, float], ...]:
    """A preset name, one (a, b, c) triple, or a sequence of triples -> a tuple of float triples (timm's rules)."""
    def is_seq(x):
        return isinstance(x, (list, tuple))

    def is_real(x):
        return isinstance(x, numbers.Real) and not isinstance(x, bool)

    def triple(x):
        if not is_seq(x) or len(x) != 3 or not all(is_real(v) for v in x):
            raise ValueError(f"Coefficient must be length-3 of real numbers, got: {x!r} (ns_coefficients)")
        return tuple(float(v) for v in x)

    if isinstance(value, str):
        if value not in NS_COEFFICIENTS:
            raise ValueError(f"Unknown coefficients preset '{value}'. Valid options: "
                             f"{', '.join(sorted(NS_COEFFICIENTS))} (ns_coefficients={value!r})")
        return NS_COEFFICIENTS[value]
    if not is_seq(value):
        raise TypeError("Coefficients must be a preset name (str), a 3-sequence (a,b,c), or a sequence of "
                        f"3-sequences (ns_coefficients={value!r})")
    if len(value) == 3 and all(is_real(v) for v in value):
        return (triple(value),)
    out = tuple(triple(v) for v in value)
    if not out:
        raise ValueError(f"Coefficient list cannot be empty (ns_coefficients={value!r})")
    return out


def _known_lr_fn(name, fn, hp) -> None:
    """``adjust_lr_fn`` is one the record's ``algo`` knows (timm asserts it at the first step)."""
    known = _MUON_LR_FNS if hp.algo == "muon" else _ADAMUON_LR_FNS
    if fn not in known:
        raise ValueError(f'Invalid scaling function "{fn}" for {"Muon" if hp.algo == "muon" else "AdaMuon"} '
                         f"({name}={fn!r} must be one of {known} or None)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MuonHyperparams(Hyperparams):
    r"""timm.optim.Muon: MomentUm Orthogonalized by Newton-Schulz, with AdamW (NAdamW) for non-matrix params.

    **Routing** (decided once per param and cached in its ``use_muon`` slot, a Python bool, as timm does):
    ``use_fallback=True`` -> fallback; else ``use_muon`` when given; else Muon iff the param has at least two
    dimensions of size > 1, neither of its first two dimensions is 1, and after flattening to
    ``(P[0], prod(P[1:]))`` the smaller side is >= 4 and the aspect ratio <= 128 (timm's ``_is_suitable_for_muon``).
    ``use_fallback``/``use_muon`` are per-group keys in timm; here they are record fields set per group.

    **Muon** (``algo='muon'``), with :math:`\mu` = ``momentum``, :math:`\gamma` = ``lr``, :math:`\lambda` =
    ``weight_decay``:

    .. math::

        p &\leftarrow p\,(1 - \gamma\lambda) \\
        b &\leftarrow b + (1-\mu)(g - b) \qquad u = g + \mu(b - g) \text{ (nesterov) or } u = b \\
        U &= \mathrm{reshape}(u): (P_0, \prod P_{1:}) \text{ (conv\_mode='flatten') or }
            (\prod P_{2:}, P_0, P_1) \text{ ('batched')} \\
        O &= \mathrm{NS}(U) \qquad p \leftarrow p - \gamma\, s\, O \\
        s &= \begin{cases} \sqrt{\max(1, m/n)} & \text{'original'} \\ 0.2\sqrt{\max(m, n)} &
            \text{'match\_rms\_adamw'} \\ \sqrt{m/n} & \text{'rms\_to\_rms'} \\ 1 & \text{None} \end{cases}
            \quad\times\ (\prod P_{2:})^{-1/2} \text{ (batched, normalize\_spatial)}

    with :math:`(m, n)` the last two dims of :math:`O`. ``NS`` is :func:`zeropower_via_newtonschulz`: transpose
    so that :math:`m \le n`, :math:`X = U / \max(\|U\|_F\,\sigma, \epsilon)` (``scale_eps``:
    :math:`\|U\|_F\sigma + \epsilon\sqrt{n/m}`), then per coefficient triple :math:`(a, b, c)`:
    :math:`A = XX^\top,\ X \leftarrow aX + (bA + cA^2)X` (``ns_steps`` times; the preset is truncated or its last
    triple repeated).

    **AdaMuon** (``algo='adamuon'``, arXiv:2507.11005): after :math:`O` (reshaped back to the param shape),
    with ``t`` the ``step`` slot and :math:`\beta_2` = ``betas[1]``:

    .. math::

        v &\leftarrow \beta_2 v + (1-\beta_2)\,O^2 \\
        \hat O &= O / (\sqrt{v} + \epsilon) \ \text{and}\ \hat O \leftarrow \hat O / (\|\hat O\|_F + \epsilon),
            \ s = 0.2\sqrt{\mathrm{numel}} \quad \text{('match\_rms\_adamw')} \\
        \hat O &= O / (\sqrt{v / (1-\beta_2^t)} + \epsilon),\ s = \sqrt{m/n}\ \text{('rms\_to\_rms')},
            \ n^{-1/2}\ \text{('rsqrt\_in')},\ 1\ \text{(None)} \\
        p &\leftarrow p - \gamma\, s\, \hat O

    **Fallback** (1-D/0-d params and ``use_fallback``): timm's functional AdamW (NAdamW when ``nesterov``) with
    lr ``lr * fallback_lr_scale``, ``betas``, ``eps`` and ``weight_decay``, no caution, no amsgrad.

    State: ``use_muon`` (bool); Muon: ``momentum_buffer`` (+ ``step``, ``exp_avg_sq`` for AdaMuon); fallback:
    ``step``, ``exp_avg``, ``exp_avg_sq``.

    ``ns_dtype`` (not a timm argument) chooses the Newton-Schulz arithmetic: ``'bfloat16'`` (default) emulates
    timm, which always runs it in bfloat16, by rounding every intermediate to bfloat16 (round to nearest even,
    float32 arithmetic in between, see :func:`round_to_bfloat16`); ``None`` runs it in the param dtype (float64 for
    verification); ``'float32'``/``'float64'`` force a dtype.

    Warnings
    --------
    * timm always orthogonalises in **bfloat16** (``zeropower_via_newtonschulz`` is called with its default
      ``dtype``): the update carries about 3 significant digits. The bfloat16 emulation here rounds at the same
      places as torch, but the matmul accumulation order differs, so it is close to timm (see the README
      for the measured gap), not bit-equal. ``ns_dtype=None`` gives the exact iteration instead.
    * timm's registry forces ``momentum=0.9`` (``has_momentum``); the class default is 0.95.
    * Torch's ``torch.optim.Muon`` differs on nearly every default (``torchmuon``): lr 1e-3, decay 0.1, Nesterov,
      the 'original' coefficients, no lr adjustment, 2-D only. Keller Jordan's original adds ``eps`` to the norm
      instead of clamping.
    * An ``adjust_lr_fn`` that the chosen ``algo`` does not know raises ``ValueError`` at construction (timm
      asserts at the first step). ``betas`` are range-checked (timm does not). ``adamw_lr`` (deprecated in timm)
      is converted once, at construction, to ``fallback_lr_scale = adamw_lr / lr`` with timm's FutureWarning.
    * AdaMuon's ``step`` slot counts only Muon steps; the fallback keeps its own ``step``.

    References
    ----------
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024,
    https://kellerjordan.github.io/posts/muon/.
    Liu et al., "Muon is Scalable for LLM Training" (match_rms_adamw), arXiv:2502.16982.
    Amsel et al., "The Polar Express", arXiv:2505.16932.
    Si et al., "AdaMuon: Adaptive Muon Optimizer", arXiv:2507.11005.
    Pethick et al., "Training Deep Learning Models with Norm-Constrained LMOs" (Scion, rms_to_rms),
    arXiv:2502.07529.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('muon', lr=0.02, ns_dtype=None)
    >>> p = {'w': np.eye(4), 'b': np.zeros(4)}
    >>> s = opt.init(p)
    >>> s['w']['use_muon'], s['b']['use_muon']
    (True, False)
    >>> p, s = opt.step(p, {'w': np.eye(4), 'b': np.ones(4)}, s)
    >>> sorted(s['b'])
    ['exp_avg', 'exp_avg_sq', 'step', 'use_muon']
    """

    anchor = "timm.optim.muon.Muon"
    lr: float = 0.02
    weight_decay: float = 0.0
    momentum: float = 0.95
    nesterov: bool = False
    ns_steps: int = hyperfield(5, "int")
    ns_coefficients: Any = hyperfield("quintic", "any", "a preset name, one (a, b, c) triple or a list of triples")
    eps: float = 1e-7
    safety_factor: float = 1.0
    adjust_lr_fn: str | None = hyperfield("match_rms_adamw", "?str")
    conv_mode: str = "flatten"
    normalize_spatial: bool = True
    adamw_lr: float | None = hyperfield(None, "?float", "deprecated: use fallback_lr_scale")
    fallback_lr_scale: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)
    algo: str = "muon"
    scale_eps: bool = False
    verbose: bool = False
    #: timm per-group keys: route every param of the group to the fallback / force the routing
    use_fallback: bool = False
    use_muon: bool | None = hyperfield(None, "?bool")
    #: not in timm: the Newton-Schulz arithmetic (None: the param dtype; 'bfloat16': emulated, timm's)
    ns_dtype: str | None = hyperfield("bfloat16", "?dtype")

    checks = {
        "lr": LR, "weight_decay": NONNEG, "momentum": Range(ge=0.0, lt=1.0, label="momentum"), "eps": EPS,
        "betas": BETAS,
        "conv_mode": OneOf(("flatten", "batched"), "Invalid {name}: {value} ({name}={value!r} must be 'flatten' or "
                                                   "'batched')"),
        "algo": OneOf(("muon", "adamuon"), "Invalid {name}: {value}. Must be 'muon' or 'adamuon' ({name}={value!r})"),
        "ns_steps": Range(ge=1, label="ns_steps"), "safety_factor": Range(gt=0.0, label="safety_factor"),
        "adjust_lr_fn": _known_lr_fn,
        "ns_dtype": OneOf(_NS_DTYPES, "Invalid {name}: {value} ({name}={value!r} must be one of {choices})"),
        # not checked by timm: lr-like (a negative one steps the fallback params uphill)
        "adamw_lr": Range(ge=0.0, note=" or None"), "fallback_lr_scale": Range(ge=0.0),
    }

    def validate(self) -> None:
        coeffs = resolve_ns_coefficients(self.ns_coefficients)
        if not isinstance(self.ns_coefficients, str):
            object.__setattr__(self, "ns_coefficients", coeffs)  # lists -> tuples (records stay comparable)
        if self.adamw_lr is not None:
            warnings.warn("adamw_lr is deprecated, use fallback_lr_scale=adamw_lr/lr instead. "
                          "adamw_lr will be removed in a future release.", FutureWarning, stacklevel=4)
            if self.lr == 0:
                raise ValueError("Cannot compute fallback_lr_scale from adamw_lr when lr=0 (adamw_lr="
                                 f"{self.adamw_lr!r}, lr=0.0)")
            # converted once, so per-step lr overrides do not recompute it (as timm converts in its constructor)
            scale = self.adamw_lr / self.lr
            if not math.isfinite(scale):
                raise ValueError(f"Invalid fallback_lr_scale value: {scale} (fallback_lr_scale=adamw_lr/lr="
                                 f"{self.adamw_lr!r}/{self.lr!r} must be finite)")
            object.__setattr__(self, "fallback_lr_scale", scale)
            object.__setattr__(self, "adamw_lr", None)


# --------------------------------------------------------------------------------------------- Newton-Schulz

def _frobenius(xp: Any, x: Any) -> Any:
    return xp.sqrt(xp.sum(x * x, axis=(-2, -1), keepdims=True))


def zeropower_via_newtonschulz(xp: Any, G: Any, steps: int, coefficients: Any, eps: float = 1e-7,
                               safety_factor: float = 1.0, scale_eps: bool = False,
                               ns_dtype: str | None = None) -> Any:
    r"""Approximate the orthogonal polar factor of ``G`` (2-D, or 3-D batched over the first axis) by
    Newton-Schulz iterations, as timm's function of the same name (and torch.optim.Muon's, which is one
    ``(a, b, c)`` triple, ``safety_factor=1`` and no ``scale_eps``: ``torchmuon`` calls this).

    ``coefficients`` is a preset name or triples (see :func:`resolve_ns_coefficients`); ``ns_dtype`` is ``None``
    (``G``'s dtype), ``'float32'``, ``'float64'`` or ``'bfloat16'`` (emulated: every intermediate torch rounds to
    bfloat16 is rounded here too, with float32 arithmetic in between). Returns an array of ``G``'s dtype.
    A zero matrix gives zeros (the norm is clamped at ``eps``).

    Examples
    --------
    >>> import numpy as np
    >>> from arrayoptim.optimizers.muon import zeropower_via_newtonschulz
    >>> O = zeropower_via_newtonschulz(np, np.array([[3.0, 0.0], [0.0, 1.0]]), 5, 'quintic')
    >>> np.round(np.diag(O), 2)
    array([1.  , 1.02])
    """
    if G.ndim not in (2, 3):
        raise ValueError(f"Newton-Schulz needs a 2-D or 3-D array, got shape {tuple(G.shape)}")
    coeffs = resolve_ns_coefficients(coefficients)
    seq = coeffs[:steps] if steps <= len(coeffs) else coeffs + (coeffs[-1],) * (steps - len(coeffs))
    if scale_eps:
        eps = eps * (G.shape[-1] / G.shape[-2]) ** 0.5
    if ns_dtype == "bfloat16":
        work = xp.float32

        def r(v):  # v is always a fresh array here: rounded in place, by blocks (the rounding's temporaries)
            return blockwise_(xp, v, lambda a: round_to_bfloat16(xp, a))
    else:
        work = G.dtype if ns_dtype is None else getattr(xp, ns_dtype)

        def r(v):
            return v
    X = r(xp.astype(G, work))
    transposed = X.shape[-2] > X.shape[-1]
    if transposed:
        X = xp.matrix_transpose(X)
    norm = r(r(_frobenius(xp, X)) * safety_factor)
    if scale_eps:
        norm = r(norm + eps)
    else:
        norm = r(xp.clip(norm, min=eps))
    X = r(X / norm)
    for a, b, c in seq:
        A = r(X @ xp.matrix_transpose(X))
        B = A @ A  # b * A + c * (A @ A), in place on the fresh products (sums and products commute exactly)
        B *= c
        A *= b
        B += A
        del A
        B = r(B)
        BX = B @ X  # a * X + B @ X, the same way
        del B
        X *= a
        X += BX
        del BX
        X = r(X)
    if transposed:
        X = xp.matrix_transpose(X)
    return X if X.dtype == G.dtype else xp.astype(X, G.dtype)


# ------------------------------------------------------------------------------------------------- routing

def is_suitable_for_muon(shape: tuple[int, ...], min_dim_size: int = 4, max_aspect_ratio: float = 128.0) -> bool:
    """timm's ``_is_suitable_for_muon`` on a shape."""
    if len(shape) < 2 or sum(1 for d in shape if d > 1) < 2:
        return False
    if shape[0] == 1 or shape[1] == 1:
        return False
    dims = (shape[0], math.prod(shape[1:])) if len(shape) >= 3 else tuple(shape)
    lo, hi = min(dims), max(dims)
    if lo < min_dim_size:
        return False
    return hi / lo <= max_aspect_ratio


def _route(shape: tuple[int, ...], hp: MuonHyperparams) -> bool:
    if hp.use_fallback:
        return False
    if hp.use_muon is not None:
        return hp.use_muon
    return is_suitable_for_muon(tuple(shape))


def _use_muon(s: dict, p: Any, hp: MuonHyperparams) -> bool:
    cached = s.get("use_muon")
    return cached if isinstance(cached, bool) else _route(tuple(p.shape), hp)


def muon_init(xp, p, hp):
    use = _route(tuple(p.shape), hp)
    s: dict[str, Any] = {"use_muon": use}
    if use:
        s["momentum_buffer"] = zeros_like(xp, p)
        if hp.algo == "adamuon":
            s["step"] = new_step(xp, p)
            s["exp_avg_sq"] = zeros_like(xp, p)
    else:
        s.update(step=new_step(xp, p), exp_avg=zeros_like(xp, p), exp_avg_sq=zeros_like(xp, p))
    return s


def muon_prepare(xp, params, grads, state, hps):
    """Checks that need every param before any is written: a param forced onto Muon must be a matrix or more."""
    for name, p in params.items():
        if grads.get(name) is None:
            continue
        hp = hps.get(name, hps[None])
        if _use_muon(state.get(name, {}), p, hp) and p.ndim < 2:
            raise ValueError(f"params[{name!r}] has shape {tuple(p.shape)}: Muon needs at least 2 dimensions "
                             "(use_muon=True forces it; timm fails with an AssertionError)")
    return {}


# ------------------------------------------------------------------------------------------------- kernels

def _orthogonalised(xp, u, hp):
    """(O in NS layout, the reshape-back function)."""
    shape = tuple(u.shape)
    if u.ndim >= 3:
        if hp.conv_mode == "flatten":
            U = xp.reshape(u, (shape[0], math.prod(shape[1:])))
        else:
            U = xp.permute_dims(xp.reshape(u, (shape[0], shape[1], math.prod(shape[2:]))), (2, 0, 1))
    else:
        U = u
    O = zeropower_via_newtonschulz(xp, U, hp.ns_steps, hp.ns_coefficients, eps=hp.eps,
                                   safety_factor=hp.safety_factor, scale_eps=hp.scale_eps, ns_dtype=hp.ns_dtype)

    def back(o):
        if u.ndim >= 3 and hp.conv_mode == "batched":
            o = xp.permute_dims(o, (1, 2, 0))
        return xp.reshape(o, shape)

    return O, back


def _muon_lr_scale(ns_shape, fn):
    m, n = (ns_shape[-2], ns_shape[-1]) if len(ns_shape) > 1 else (1.0, 1.0)
    if fn == "original":
        return max(1, m / n) ** 0.5
    if fn == "match_rms_adamw":
        return 0.2 * max(m, n) ** 0.5
    if fn == "rms_to_rms":
        return (m / n) ** 0.5
    return 1.0


def _adamuon_lr_scale(ns_shape, fn):
    m, n = (ns_shape[-2], ns_shape[-1]) if len(ns_shape) > 1 else (1.0, 1.0)
    if fn == "match_rms_adamw":
        return 0.2 * math.prod(ns_shape) ** 0.5, True
    if fn == "rms_to_rms":
        return (m / n) ** 0.5, False
    if fn == "rsqrt_in":
        return n ** -0.5, False
    return 1.0, False


@dataclasses.dataclass(frozen=True)
class _Fallback:
    """What :func:`adamw_legacy_kernel` and :func:`nadamw_kernel` read, as timm's Muon calls its functional
    ``adamw``/``nadamw``: no caution, amsgrad, maximize, clipping or corrected decay."""

    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    amsgrad: bool = False
    caution: bool = False
    maximize: bool = False
    clipping_threshold: float | None = None
    corrected_weight_decay: bool = False


def _fallback(xp, p, g, s, hp):
    """timm's functional AdamW (``adamwlegacy``'s kernel), NAdamW (``nadamw``'s) with nesterov, at lr
    ``lr * fallback_lr_scale``."""
    fb = _Fallback(lr=hp.lr * hp.fallback_lr_scale, betas=hp.betas, eps=hp.eps, weight_decay=hp.weight_decay)
    return (nadamw_kernel if hp.nesterov else adamw_legacy_kernel)(xp, p, g, s, fb, {})


def muon_kernel(xp, p, g, s, hp, ctx):
    """Per-array Muon / AdaMuon / fallback update; see :class:`MuonHyperparams` for the math."""
    use = _use_muon(s, p, hp)
    s["use_muon"] = use
    if not use:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            if k not in s:  # a state made under another routing
                s[k] = new_step(xp, p) if k == "step" else zeros_like(xp, p)
        return _fallback(xp, p, g, s, hp)
    adamuon = hp.algo == "adamuon"
    if "momentum_buffer" not in s:
        s["momentum_buffer"] = zeros_like(xp, p)
    if adamuon:
        if "step" not in s:
            s["step"] = new_step(xp, p)
        if "exp_avg_sq" not in s:
            s["exp_avg_sq"] = zeros_like(xp, p)
        t = increment_step(s)
    p *= 1.0 - hp.lr * hp.weight_decay
    buf = lerp_(xp, s["momentum_buffer"], g, 1.0 - hp.momentum)
    s["momentum_buffer"] = buf
    u = lerp(xp, g, buf, hp.momentum) if hp.nesterov else buf
    O, back = _orthogonalised(xp, u, hp)
    batched = hp.conv_mode == "batched" and p.ndim >= 3
    spatial = math.prod(tuple(p.shape)[2:]) ** -0.5 if batched and hp.normalize_spatial else 1.0
    if not adamuon:
        scale = _muon_lr_scale(tuple(O.shape), hp.adjust_lr_fn) * spatial
        O = back(O)
        O *= -hp.lr * scale  # (-lr * scale) * O, in place on the fresh orthogonalised update
        p += O
        return p
    scale, rms = _adamuon_lr_scale(tuple(O.shape), hp.adjust_lr_fn)
    O = back(O)
    beta2 = hp.betas[1]
    v = s["exp_avg_sq"]
    v *= beta2
    v += (1 - beta2) * (O * O)
    s["exp_avg_sq"] = v
    if rms:
        denom = xp.sqrt(v) + hp.eps
    else:
        denom = xp.sqrt(v / like(xp, 1 - beta2 ** t, p)) + hp.eps
    U = O / denom
    if rms:
        U = U / (l2_norm(xp, U) + hp.eps)
    p += (-hp.lr * scale * spatial) * U
    return p


_SLOTS = ("momentum_buffer", "exp_avg", "exp_avg_sq")
register(
    OptimInfo("muon", "MomentUm Orthogonalized by Newton-schulz with AdamW fallback for 1D params", MuonHyperparams,
              kernel=muon_kernel, init=muon_init, prepare=muon_prepare, param_slots=_SLOTS, locality="matrix",
              has_eps=True, has_momentum=True, has_betas=True),
    variants={
        "nmuon": ("MomentUm Orthogonalized by Newton-schulz with Nesterov and NAdamW fallback for 1D params",
                  {"nesterov": True}),
        "adamuon": ("AdaMuon: Muon with adaptive second moment estimation on orthogonalized directions",
                    {"algo": "adamuon"}),
        "nadamuon": ("AdaMuon with Nesterov momentum and NAdamW fallback for 1D params",
                     {"algo": "adamuon", "nesterov": True}),
    },
)
