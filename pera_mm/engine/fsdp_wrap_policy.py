"""FSDP auto-wrap policy for PerA: student and teacher shard alike."""

from mmengine.registry import FUNCTIONS

#: Modules that become their own FSDP unit.
PERA_FSDP_UNITS = ('Block', 'PerAViT', 'PerADINOHead', 'PixelPredictionHead')


@FUNCTIONS.register_module()
def pera_fsdp_wrap_policy(
    module, recurse: bool, nonwrapped_numel: int, module_names=PERA_FSDP_UNITS
) -> bool:
    """Wrap every transformer block, every backbone and every head.

    The EMA update ``teacher <- m * teacher + (1 - m) * student`` runs on each
    rank's local shards, so the student's and the teacher's flat parameters
    must be laid out and sharded identically. A size-based policy does not
    guarantee that: it pools the small leftovers of both backbones (patch
    embedding, position embedding, norms) into one root unit, where a student
    tensor and its teacher twin land at different offsets. Wrapping by module
    class gives both backbones the same unit structure (each block one unit,
    each backbone's leftovers its own unit, each head one unit).
    """
    if recurse:
        return True
    return type(module).__name__ in module_names
