# Copyright (c) pera-mm contributors. All rights reserved.
"""BIT change-detection head, faithful to the reference BIT (justchenhao/BIT_CD)."""

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError
from ..utils.bit_transformer import BITTransformerDecoder, BITTransformerEncoder

#: The reference's initialisation (``init_weights(net, 'normal', 0.02)`` of BIT): conv and
#: linear weights N(0, 0.02) with zero bias, BN weights N(1, 0.02) with zero bias; LayerNorms
#: keep PyTorch's (1, 0) and the token position embedding its N(0, 1) draw.
BIT_INIT_CFG = [
    dict(type='Normal', layer=['Conv2d', 'Linear'], mean=0.0, std=0.02, bias=0.0),
    dict(type='Normal', layer=['BatchNorm2d', 'SyncBatchNorm'], mean=1.0, std=0.02, bias=0.0),
]

#: BIT's loss: ``F.cross_entropy(logits, label, ignore_index=255)``, the mean over the
#: labelled (non-ignored) pixels, which is MMSeg's CE with ``avg_non_ignore=True``.
BIT_LOSS_CFG = dict(
    type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
)

FeaturePair = Sequence[Union[torch.Tensor, Sequence[torch.Tensor]]]


@MODELS.register_module()
class BITHead(BaseDecodeHead):
    """The BIT head of Chen et al. (2021), as the reference ``BASE_Transformer`` computes it.

    For one pair of ``channels``-wide feature maps at 1/4 resolution (x1 of date A, x2 of
    date B):

    1. **Semantic tokenizer** (per date, shared weights): a 1x1 conv (no bias) gives
       ``token_len`` attention maps; each is softmaxed over the H*W positions (not over the
       tokens) and pools the map into one token: (B, token_len, C).
    2. **Joint encoder**: the tokens of both dates are concatenated (date A first), the
       learned ``pos_embed`` (1, 2 * token_len, C) is added, and ``enc_depth`` pre-norm
       self-attention layers run over all 2 * token_len tokens; the result is split back
       into the first and last ``token_len`` tokens.
    3. **Decoder** (per date, shared weights): the pixels (raster order) are queries that
       cross-attend, through ``dec_depth`` layers, to that date's own encoded tokens.
    4. ``|d1 - d2|`` at 1/4 resolution, a bilinear x``upsample_factor`` upsample
       (``align_corners=False``), then the classifier at full resolution: conv3x3 (no bias)
       -> norm -> ReLU -> ``conv_seg`` conv3x3 (with bias) giving the logits. The logits
       are not upsampled again.

    Attention logits are scaled by ``channels ** -0.5`` (not ``head_dims ** -0.5``), the
    FFN uses exact GELU, and no shipped reference setting has a decoder position
    embedding, so there is none. With ``with_pos_embed=False`` the encoder sees the raw
    tokens (the reference's ``with_pos=None``). The default initialisation is the
    reference's (:data:`BIT_INIT_CFG`).

    Both dates' features come in as a pair, ``inputs = (feats_a, feats_b)``; each element
    is a tensor or a sequence of levels, from which ``in_index`` picks the 1/4 map (what
    ``SiameseEncoderDecoder`` passes). The reference's released LEVIR-CD model
    (``base_transformer_pos_s4_dd8_dedim8``) is ``decoder_head_dims=8``; the default 64
    is ``base_transformer_pos_s4_dd8``, the setting of the parity record.

    Args:
        in_channels (int): channels of each date's input map; must equal ``channels``
            (project to BIT's width on the encoder side, as BIT's ``conv_pred`` does).
        channels (int): token width ``dim`` of the tokenizer, transformer and classifier
            (32 in BIT).
        num_classes (int): output classes (2: unchanged, changed).
        token_len (int): tokens per date.
        enc_depth (int): encoder layers.
        dec_depth (int): decoder layers.
        num_heads (int): attention heads of the encoder and the decoder.
        head_dims (int): width of each encoder head (``dim_head``).
        decoder_head_dims (int): width of each decoder head (``decoder_dim_head``).
        mlp_ratio (float): FFN hidden width as a multiple of ``channels`` (2 in BIT).
        transformer_dropout (float): dropout in the transformer (0 in BIT).
        with_pos_embed (bool): add the learned token position embedding.
        upsample_factor (int): bilinear upsampling of the difference map.
        norm_cfg (dict): norm of the classifier's first conv (BN).
        act_cfg (dict): activation after it (ReLU, the BaseDecodeHead default).
        in_index (int): level of each date's feature sequence to use.
        dropout_ratio (float): dropout before ``conv_seg`` (0 in BIT).
        out_channels (int, optional): ``conv_seg`` outputs; ``num_classes`` by default.
        loss_decode (dict | list[dict]): the loss; BIT's CE (:data:`BIT_LOSS_CFG`, mean
            over the non-ignored pixels) by default.
        init_cfg (dict | list[dict]): initialisation; the reference's by default.
        **kwargs: the remaining :class:`BaseDecodeHead` arguments (``ignore_index``,
            ``align_corners``, ``sampler``, ...).
    """

    def __init__(
        self,
        in_channels: int = 32,
        channels: int = 32,
        num_classes: int = 2,
        token_len: int = 4,
        enc_depth: int = 1,
        dec_depth: int = 8,
        num_heads: int = 8,
        head_dims: int = 64,
        decoder_head_dims: int = 64,
        mlp_ratio: float = 2.0,
        transformer_dropout: float = 0.0,
        with_pos_embed: bool = True,
        upsample_factor: int = 4,
        norm_cfg: Optional[dict] = None,
        in_index: int = 0,
        dropout_ratio: float = 0.0,
        out_channels: Optional[int] = None,
        loss_decode=BIT_LOSS_CFG,
        init_cfg=BIT_INIT_CFG,
        **kwargs,
    ):
        if in_channels != channels:
            raise PeraConfigError(
                f'BITHead: in_channels ({in_channels}) must equal channels ({channels}); '
                'project the encoder features to the token width before the head'
            )
        for name, value in (('token_len', token_len), ('upsample_factor', upsample_factor)):
            if not isinstance(value, int) or value < 1:
                raise PeraConfigError(f'BITHead: {name} must be an int >= 1, got {value!r}')
        norm_cfg = dict(type='BN') if norm_cfg is None else norm_cfg
        super().__init__(
            in_channels,
            channels,
            num_classes=num_classes,
            out_channels=num_classes if out_channels is None else out_channels,
            norm_cfg=norm_cfg,
            in_index=in_index,
            dropout_ratio=dropout_ratio,
            loss_decode=loss_decode,
            init_cfg=init_cfg,
            **kwargs,
        )
        self.token_len = token_len
        self.upsample_factor = upsample_factor
        mlp_dims = int(round(channels * mlp_ratio))

        self.token_conv = nn.Conv2d(channels, token_len, kernel_size=1, bias=False)
        if with_pos_embed:
            self.pos_embed = nn.Parameter(torch.randn(1, 2 * token_len, channels))
        else:
            self.pos_embed = None
        self.encoder = BITTransformerEncoder(
            channels, enc_depth, num_heads, head_dims, mlp_dims, transformer_dropout
        )
        self.decoder = BITTransformerDecoder(
            channels, dec_depth, num_heads, decoder_head_dims, mlp_dims, transformer_dropout
        )
        self.cls_conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.cls_norm = build_norm_layer(norm_cfg, channels)[1]
        self.cls_act = build_activation_layer(self.act_cfg)
        # BaseDecodeHead's 1x1 classifier becomes BIT's final conv3x3 (with bias).
        self.conv_seg = nn.Conv2d(channels, self.out_channels, kernel_size=3, padding=1)

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Semantic tokens (B, token_len, C) of one date's map ``x`` (B, C, H, W)."""
        attn = self.token_conv(x).flatten(2).softmax(dim=-1)  # over the H*W positions
        return torch.bmm(attn, x.flatten(2).transpose(1, 2))

    def encode(
        self, tokens1: torch.Tensor, tokens2: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Jointly encode both dates' tokens; returns (date A's, date B's) encoded tokens."""
        tokens = torch.cat([tokens1, tokens2], dim=1)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        tokens = self.encoder(tokens)
        return tokens[:, : self.token_len], tokens[:, self.token_len :]

    def decode(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Decode the map ``x`` (B, C, H, W) with one date's encoded ``tokens``."""
        B, C, H, W = x.shape
        queries = x.flatten(2).transpose(1, 2)  # raster order
        out = self.decoder(queries, tokens)
        return out.transpose(1, 2).reshape(B, C, H, W)

    def classify(self, decoded1: torch.Tensor, decoded2: torch.Tensor) -> torch.Tensor:
        """Logits at ``upsample_factor`` times the map size from both decoded maps."""
        diff = (decoded1 - decoded2).abs()
        diff = F.interpolate(
            diff, scale_factor=self.upsample_factor, mode='bilinear', align_corners=False
        )
        return self.cls_seg(self.cls_act(self.cls_norm(self.cls_conv(diff))))

    def forward_pair(
        self, x1: torch.Tensor, x2: torch.Tensor, return_intermediates: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        """Change logits for the maps of date A (``x1``) and date B (``x2``).

        Args:
            x1 (Tensor): (B, C, H, W) features of date A.
            x2 (Tensor): (B, C, H, W) features of date B.
            return_intermediates (bool): also return a dict with ``tokens1``, ``tokens2``,
                ``tokens_after_encoder`` (B, 2 * token_len, C), ``decoded1``, ``decoded2``.

        Returns:
            Tensor | tuple: logits (B, num_classes, upsample_factor * H, upsample_factor * W),
            and the intermediates when asked.
        """
        if x1.shape != x2.shape:
            raise PeraConfigError(
                f'BITHead: the two dates have features of different shapes {tuple(x1.shape)} '
                f'and {tuple(x2.shape)}'
            )
        if x1.dim() != 4 or x1.shape[1] != self.in_channels:
            raise PeraConfigError(
                f'BITHead: expected (B, in_channels={self.in_channels}, H, W) features, got '
                f'{tuple(x1.shape)}'
            )
        tokens1, tokens2 = self.tokenize(x1), self.tokenize(x2)
        enc1, enc2 = self.encode(tokens1, tokens2)
        decoded1, decoded2 = self.decode(x1, enc1), self.decode(x2, enc2)
        logits = self.classify(decoded1, decoded2)
        if not return_intermediates:
            return logits
        return logits, dict(
            tokens1=tokens1,
            tokens2=tokens2,
            tokens_after_encoder=torch.cat([enc1, enc2], dim=1),
            decoded1=decoded1,
            decoded2=decoded2,
        )

    def _select_level(self, feats) -> torch.Tensor:
        if isinstance(feats, torch.Tensor):
            return feats
        return feats[self.in_index]

    def forward(self, inputs: FeaturePair) -> torch.Tensor:
        """Change logits for ``inputs = (features of date A, features of date B)``."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise PeraConfigError(
                'BITHead: inputs must be a pair (features of date A, features of date B), '
                f'got {type(inputs).__name__}'
                + (f' of length {len(inputs)}' if isinstance(inputs, (list, tuple)) else '')
            )
        return self.forward_pair(self._select_level(inputs[0]), self._select_level(inputs[1]))
