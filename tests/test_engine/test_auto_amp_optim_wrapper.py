"""AutoAmpOptimWrapper: AmpOptimWrapper on accelerators, OptimWrapper on CPU."""

import copy
import warnings

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPERS, DefaultScope
from torch import nn

import pera_mm.engine.optimizers.auto_amp_optim_wrapper as auto_amp
from pera_mm.engine.optimizers import AutoAmpOptimWrapper

pytestmark = pytest.mark.skipif(
    auto_amp.amp_device_available(), reason='CPU behaviour; this machine has an accelerator'
)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 1))


def _train(wrapper, model, steps=3):
    torch.manual_seed(1)
    losses = []
    for _ in range(steps):
        x = torch.randn(6, 4)
        with wrapper.optim_context(model):
            loss = model(x).pow(2).mean()
        wrapper.update_params(loss)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize('scope', ['mmengine', 'mmpretrain', 'mmseg', 'mmdet'])
def test_builds_from_configs_in_every_scope(scope):
    model = _model()
    cfg = dict(type='AutoAmpOptimWrapper', dtype='bfloat16', optimizer=dict(type='AdamW', lr=1e-3))
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, cfg)
    assert type(wrapper) is AutoAmpOptimWrapper
    assert OPTIM_WRAPPERS.get('AutoAmpOptimWrapper') is AutoAmpOptimWrapper
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert wrapper.amp_enabled is False
    assert wrapper.loss_scaler is None and wrapper.cast_dtype is None


def test_same_losses_and_weights_as_optim_wrapper():
    model, ref_model = _model(), _model()
    wrapper = AutoAmpOptimWrapper(
        dtype='float16', optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    ref = OptimWrapper(optimizer=torch.optim.SGD(ref_model.parameters(), lr=0.1))
    assert _train(wrapper, model) == _train(ref, ref_model)
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)
    assert wrapper.inner_count == ref.inner_count == 3


def test_no_autocast_on_cpu():
    model = _model()
    wrapper = AutoAmpOptimWrapper(
        dtype='bfloat16', optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    with wrapper.optim_context(model):
        assert not torch.is_autocast_enabled('cpu')
        assert model(torch.randn(2, 4)).dtype == torch.float32


def test_clip_grad_matches_optim_wrapper():
    model, ref_model = _model(), _model()
    clip = dict(max_norm=0.05)
    wrapper = AutoAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), clip_grad=copy.deepcopy(clip)
    )
    ref = OptimWrapper(
        optimizer=torch.optim.SGD(ref_model.parameters(), lr=0.1), clip_grad=copy.deepcopy(clip)
    )
    hub = MessageHub.get_current_instance()
    _train(wrapper, model, steps=1)
    grad_norm = hub.get_scalar('train/grad_norm').current()
    _train(ref, ref_model, steps=1)
    assert grad_norm == pytest.approx(hub.get_scalar('train/grad_norm').current())
    assert grad_norm > 0.05  # clipping was active
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


def test_state_dict_round_trip():
    model = _model()
    wrapper = AutoAmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3))
    _train(wrapper, model, steps=2)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    assert set(state) == {'state', 'param_groups'}

    other_model = copy.deepcopy(model)
    other = AutoAmpOptimWrapper(optimizer=torch.optim.AdamW(other_model.parameters(), lr=5.0))
    other.load_state_dict(copy.deepcopy(state))
    assert other.param_groups[0]['lr'] == 1e-3
    for k, v in state['state'][0].items():
        assert torch.equal(torch.as_tensor(other.state_dict()['state'][0][k]), torch.as_tensor(v))
    # continuing from the restored state equals continuing the original
    assert _train(other, other_model, 1) == _train(wrapper, model, 1)


def test_loads_state_saved_with_amp(monkeypatch):
    """A checkpoint of an AMP run (optimizer state + GradScaler state) resumes on CPU:
    the optimizer state comes back, the scaler state is dropped with a message."""
    model = _model()
    wrapper = AutoAmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3))
    _train(wrapper, model, steps=2)
    state = copy.deepcopy(wrapper.state_dict())
    state['loss_scaler'] = dict(
        scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000, _growth_tracker=0
    )
    messages = []
    monkeypatch.setattr(
        auto_amp, 'print_log', lambda msg, logger=None, **kwargs: messages.append(msg)
    )
    monkeypatch.setattr(auto_amp, '_logged_choices', set())
    other_model = copy.deepcopy(model)
    other = AutoAmpOptimWrapper(optimizer=torch.optim.AdamW(other_model.parameters(), lr=5.0))
    other.load_state_dict(state)
    assert any('ignoring the loss_scaler state' in m for m in messages)
    assert other.param_groups[0]['lr'] == 1e-3
    assert int(other.optimizer.state_dict()['state'][0]['step']) == 2  # AdamW's count
    # the resumed run continues exactly as the original
    assert _train(other, other_model, 1) == _train(wrapper, model, 1)
    for p, q in zip(other_model.parameters(), model.parameters()):
        assert torch.equal(p, q)


def test_bad_arguments_give_one_line_errors():
    params = list(_model().parameters())
    with pytest.raises(ValueError, match=r"dtype must be one of .*got 'fp8'"):
        AutoAmpOptimWrapper(dtype='fp8', optimizer=torch.optim.SGD(params, 1.0))
    with pytest.raises(TypeError, match='loss_scale must be'):
        AutoAmpOptimWrapper(loss_scale='static', optimizer=torch.optim.SGD(params, 1.0))


def test_logs_its_choice_once(monkeypatch):
    messages = []
    monkeypatch.setattr(auto_amp, 'print_log', lambda msg, logger=None: messages.append(msg))
    monkeypatch.setattr(auto_amp, '_logged_choices', set())
    for _ in range(3):
        AutoAmpOptimWrapper(optimizer=torch.optim.SGD(_model().parameters(), 1.0))
    assert len(messages) == 1
    assert 'full precision' in messages[0]


def test_is_amp_optim_wrapper_on_an_accelerator(monkeypatch):
    """Pretend an accelerator exists: the AMP path must be AmpOptimWrapper's
    (GradScaler, autocast dtype, loss_scaler in the state dict)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as mm_amp

    monkeypatch.setattr(auto_amp, 'amp_device_available', lambda: True)
    monkeypatch.setattr(mm_amp, 'is_cuda_available', lambda: True)
    model = _model()
    with warnings.catch_warnings():  # GradScaler disables itself sans CUDA
        warnings.simplefilter('ignore')
        wrapper = AutoAmpOptimWrapper(
            loss_scale=512.0,
            dtype='bfloat16',
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        )
    assert isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.amp_enabled is True
    assert wrapper.cast_dtype is torch.bfloat16
    assert wrapper._scale_update_param == 512.0
    assert 'loss_scaler' in wrapper.state_dict()
