from .fsdp_wrap_policy import (  # noqa: F401
    ijepa_fsdp_wrap_policy,
    latent_mim_fsdp_wrap_policy,
    pera_fsdp_wrap_policy,
)
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
