"""Learning-rate schedules as pure functions of the step (timm and torch.optim.lr_scheduler equivalents)."""
TORCH_EQUIVALENTS: dict = {}
TIMM_EQUIVALENTS: dict = {}
