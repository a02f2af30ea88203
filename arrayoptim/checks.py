"""Public declarative range checks for hyperparameter records (``checks = {field: check}`` on a
:class:`~arrayoptim.Hyperparams` subclass, applied in order after coercion and before ``validate()``).

Messages are torch's plus the argument's name and value, e.g. ``Invalid learning rate: -1.0 (lr=-1.0 must be >= 0)``.

==================  =================================================================================================
``Range``           bounds (``ge``/``gt``/``le``/``lt``; NaN is out of every range), torch's message by default;
                    ``inf_ok=True`` declares ``+inf`` meaningful (a threshold meaning "no limit")
``Each``            a check applied to every element of a tuple (``step_sizes[0]``, ``step_sizes[1]``)
``OneOf``           one of a set of choices
``Betas``           ``n`` coefficients in ``[0, 1)``
``LR``, ``EPS``     torch's learning-rate and epsilon checks (``>= 0``)
``NONNEG``          ``>= 0`` (weight decay, momentum, ...)
``BETAS``           two betas
``ADAM_CHECKS``     torch.optim.Adam's checks in its order: lr, eps, betas, weight_decay
``MAX_LR_SNAPSHOT`` positive when ``corrected_weight_decay`` is on
``NESTEROV``        torch.optim.SGD's Nesterov rule (a momentum, no dampening)
``SHOULD_BE``       torch's "should be ... but is" message form, for ``Range(message=SHOULD_BE)``
``check_domain``    the generic rule every field obeys after its declared check: no NaN, no infinity (``+inf``
                    only where the check is ``inf_ok``), also inside tuples and lists
==================  =================================================================================================
"""
from ._hyper import (ADAM_CHECKS, BETAS, EPS, LR, MAX_LR_SNAPSHOT, NESTEROV, NONNEG, SHOULD_BE, Betas, Check, Each,
                     OneOf, Range, check_domain)

__all__ = ["ADAM_CHECKS", "BETAS", "EPS", "LR", "MAX_LR_SNAPSHOT", "NESTEROV", "NONNEG", "SHOULD_BE", "Betas",
           "Check", "Each", "OneOf", "Range", "check_domain"]
