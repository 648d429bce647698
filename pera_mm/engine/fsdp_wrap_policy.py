"""FSDP auto-wrap policies: student and teacher (target) shard alike."""

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


#: I-JEPA's FSDP units: every block (encoders and predictor), both encoders, the predictor.
IJEPA_FSDP_UNITS = ('Block', 'IJEPAViT', 'IJEPAPredictor')

#: LatentMIM's FSDP units: every block, both encoders, every decoder block, the decoder.
LATENT_MIM_FSDP_UNITS = ('Block', 'LatentMIMViT', 'CrossDecoderBlock', 'LatentMIMDecoder')


@FUNCTIONS.register_module()
def ijepa_fsdp_wrap_policy(module, recurse: bool, nonwrapped_numel: int) -> bool:
    """:func:`pera_fsdp_wrap_policy` over :data:`IJEPA_FSDP_UNITS`.

    The context encoder and its EMA target get the same units, so the EMA after
    the optimizer step runs shard by shard, as PerA's.
    """
    return pera_fsdp_wrap_policy(module, recurse, nonwrapped_numel, IJEPA_FSDP_UNITS)


@FUNCTIONS.register_module()
def latent_mim_fsdp_wrap_policy(module, recurse: bool, nonwrapped_numel: int) -> bool:
    """:func:`pera_fsdp_wrap_policy` over :data:`LATENT_MIM_FSDP_UNITS`.

    The EMA runs inside the forward, before the encoders' units gather their
    parameters, so it too works on aligned local shards. An encoder left in the
    root unit would not do: its parameters would be views of the root's gathered
    flat parameter, which autograd forbids updating in place.
    """
    return pera_fsdp_wrap_policy(module, recurse, nonwrapped_numel, LATENT_MIM_FSDP_UNITS)
