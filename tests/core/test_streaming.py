"""The streaming() context: every cache resets on exit (also on error); no nesting; composite models."""
import pytest
import torch
from torch import nn

from arsound.core.attention import MultiHeadAttention
from arsound.core.layers import CausalConv1d, gated
from arsound.core.streaming import StreamingModule, reset_streaming, streaming


class TinyWaveNet(nn.Module):
    """Dilated gated residual stack (WaveNet shape), enough to test streaming through a hierarchy."""

    def __init__(self, C=4, k=2, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.inp = CausalConv1d(1, C, 2)
        self.convs = nn.ModuleList(CausalConv1d(C, 2 * C, k, dilation=d) for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(C, C, 1) for _ in dilations)

    def forward(self, x):  # (B, 1, T) -> (B, C, T)
        h = self.inp(x)
        for conv, res in zip(self.convs, self.res):
            h = h + res(gated(conv(h)))
        return h


class ConvAttn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = CausalConv1d(4, 8, 3, dilation=2)
        self.attn = MultiHeadAttention(8, 2, "fixed", max_len=16, stride=4)

    def forward(self, x):  # (B, 4, T) -> (B, T, 8)
        return self.attn(self.conv(x).transpose(1, 2))


def _stream(model, x, dim=-1):
    return torch.cat([model(xt) for xt in x.split(1, dim)], dim)


def test_wavenet_stack_streaming_equals_full():
    torch.manual_seed(0)
    net = TinyWaveNet()
    x = torch.randn(3, 1, 40)
    with torch.no_grad(), streaming(net):
        out = _stream(net, x)
    torch.testing.assert_close(out, net(x), atol=1e-5, rtol=0)


def test_conv_then_attention_streaming_equals_full():
    torch.manual_seed(0)
    model = ConvAttn().eval()
    x = torch.randn(2, 4, 16)
    with torch.no_grad(), streaming(model):
        out = torch.cat([model(xt) for xt in x.split(1, -1)], 1)
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=0)


def _streaming_mods(model):
    return [m for m in model.modules() if isinstance(m, StreamingModule)]


def test_state_resets_on_exit_and_on_error():
    torch.manual_seed(0)
    net = TinyWaveNet()
    x = torch.randn(1, 1, 12)
    with torch.no_grad(), net.inp.streaming():  # the method form, on one layer
        net.inp(x[..., :3])
        assert net.inp.state["pos"] == 3
    assert net.inp.state == {} and not net.inp.is_streaming
    with torch.no_grad(), streaming(net):
        first = _stream(net, x)
        assert all(m.is_streaming and m.state for m in _streaming_mods(net))
    assert all(not m.is_streaming and m.state == {} for m in _streaming_mods(net))
    with pytest.raises(KeyError):
        with torch.no_grad(), streaming(net):
            net(x[..., :5])
            raise KeyError("boom")
    assert all(not m.is_streaming and m.state == {} for m in _streaming_mods(net))
    with torch.no_grad(), streaming(net):  # a fresh stream gives the same outputs as the first
        torch.testing.assert_close(_stream(net, x), first, atol=0, rtol=0)


def test_reset_streaming_starts_a_new_stream():
    torch.manual_seed(0)
    net = TinyWaveNet()
    a, b = torch.randn(2, 1, 1, 10).unbind(0)
    with torch.no_grad(), streaming(net):
        _stream(net, a)
        reset_streaming(net)
        out_b = _stream(net, b)
    torch.testing.assert_close(out_b, net(b), atol=1e-5, rtol=0)


def test_nested_streaming_raises():
    net = TinyWaveNet()
    with streaming(net):
        with pytest.raises(RuntimeError, match="already streaming"):
            with streaming(net.convs[0]):
                pass
        with pytest.raises(RuntimeError, match="already streaming"):
            with net.inp.streaming():
                pass
        assert all(m.is_streaming for m in _streaming_mods(net))  # the outer block is untouched
    assert not any(m.is_streaming for m in _streaming_mods(net))
