"""PyTorch export: logits of exported models match PyTorch, names match state_dict keys,
and unsupported modules / functions are named in the error."""

import numpy as np
import pytest

import xbarref
from xbarref.errors import XbarrefError

pytestmark = pytest.mark.torch


def randomize_bn(torch, module, seed):
    """Random affine parameters and running statistics in every batchnorm."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return module


def small_cnn(torch):
    nn, F = torch.nn, torch.nn.functional

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(6)
            self.relu = nn.ReLU(inplace=True)
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(6, 8, (3, 2), stride=(1, 2), padding="valid")
            self.bn2 = nn.BatchNorm2d(8)
            self.pool2 = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
            self.conv3 = nn.Conv2d(8, 8, 3, padding="same")
            self.drop = nn.Dropout(0.3)
            self.fc1 = nn.Linear(8 * 3 * 3, 16)
            self.bn3 = nn.BatchNorm1d(16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = self.pool1(self.relu(self.bn1(self.conv1(x))))
            x = F.relu(self.bn2(self.conv2(x)))
            x = self.pool2(x)
            x = self.conv3(x).relu()
            x = x.view(x.size(0), -1)
            x = self.drop(x)
            x = torch.relu(self.bn3(self.fc1(x)))
            return self.fc2(x)

    torch.manual_seed(0)
    return randomize_bn(torch, SmallCNN(), 1).eval()


def torchvision_style_resnet(torch):
    """ResNet with torchvision's BasicBlock structure (written here; torchvision is not
    a dependency): ``out += identity``, one ReLU module called twice, conv+bn downsample."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return self.relu(out)

    class ResNet(nn.Module):
        def __init__(self, widths=(8, 16, 32), blocks=2, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = widths[0]
            for i, planes in enumerate(widths):
                stride = 1 if i == 0 else 2
                layers = []
                for b in range(blocks):
                    down = None
                    if b == 0 and (stride != 1 or inplanes != planes):
                        down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                             nn.BatchNorm2d(planes))
                    layers.append(BasicBlock(inplanes, planes, stride if b == 0 else 1, down))
                    inplanes = planes
                setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(inplanes, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer3(self.layer2(self.layer1(x)))
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            return self.fc(x)

    torch.manual_seed(2)
    return randomize_bn(torch, ResNet(), 3).eval()


def assert_logits_match(torch, module, model, x):
    """xbarref logits vs the float32 module to 1e-5 relative, vs float64 to 1e-10."""
    with torch.no_grad():
        ref32 = module(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)
        ref64 = module.double()(torch.from_numpy(x)).numpy()
    module.float()
    got = model(x)
    scale = np.abs(ref32).max()
    assert scale > 0 and np.ptp(ref32) > 0
    np.testing.assert_allclose(got, ref32, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(got, ref64, rtol=1e-10, atol=1e-10 * np.abs(ref64).max())
    assert (got.argmax(1) == ref32.argmax(1)).all()


class TestExportMatchesTorch:
    def test_small_cnn(self, torch_module, tmp_path):
        torch = torch_module
        net = small_cnn(torch)
        example = torch.rand(4, 1, 8, 8)
        from xbarref.io.torch import export
        exported = export(net, tmp_path / "cnn.h5", example, classes=list("0123456789"))
        model = xbarref.load_model(tmp_path / "cnn.h5")
        kinds = [n.layer.kind for n in model.nodes]
        assert kinds == ["conv2d", "batchnorm2d", "relu", "maxpool2d", "conv2d", "batchnorm2d",
                         "relu", "avgpool2d", "conv2d", "relu", "flatten", "dropout", "linear",
                         "batchnorm1d", "relu", "linear"]
        assert model.input_shape == (1, 8, 8) and model.classes == list("0123456789")
        assert model.nodes[4].layer.config()["padding"] == [0, 0]
        assert model.nodes[8].layer.config()["padding"] == [1, 1]
        x = np.random.default_rng(0).random((16, 1, 8, 8))  # not the example input
        assert_logits_match(torch, net, model, x)
        assert exported(x).tobytes() == model(x).tobytes()

    def test_torchvision_style_resnet(self, torch_module, tmp_path):
        torch = torch_module
        net = torchvision_style_resnet(torch)
        from xbarref.io.torch import export
        export(net, tmp_path / "resnet.h5", torch.randn(2, 3, 16, 16))
        model = xbarref.load_model(tmp_path / "resnet.h5")
        assert len(model.layers_of_kind("add")) == 6
        assert [n for n, _ in model.layers_of_kind("add")][0] == "layer1.0.add"
        # Parameter and buffer names are the state_dict keys, values are equal.
        state = {k: v for k, v in net.state_dict().items()
                 if not k.endswith("num_batches_tracked")}
        arrays = {**model.named_parameters(), **model.named_buffers()}
        assert sorted(arrays) == sorted(state)
        for key, value in state.items():
            np.testing.assert_array_equal(arrays[key], value.double().numpy())
        x = np.random.default_rng(1).standard_normal((8, 3, 16, 16))
        assert_logits_match(torch, net, model, x)

    def test_module_is_not_modified(self, torch_module, tmp_path):
        torch = torch_module
        net = small_cnn(torch).train()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        from xbarref.io.torch import export
        export(net, tmp_path / "m.h5", torch.rand(3, 1, 8, 8))
        assert net.training and next(net.parameters()).dtype == torch.float32
        for k, v in net.state_dict().items():
            assert torch.equal(v, before[k]), k

    def test_functional_forms_identity_and_shared_modules(self, torch_module, tmp_path):
        torch = torch_module
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 6)
                self.act = nn.ReLU()
                self.skip = nn.Identity()
                self.flat = nn.Flatten()
                self.head = nn.Linear(6, 3)
                self.unused = nn.Linear(6, 2)

            def forward(self, x):
                x = self.flat(x)
                h = self.act(self.fc(x))
                h = torch.add(h, self.skip(x))
                h = self.act(self.fc(h))          # modules called twice: weights copied
                h = h.add(x).reshape(h.shape[0], -1)
                h = nn.functional.relu(h, inplace=False) + x
                self.unused(h)                    # dead code is dropped
                return self.head(h)

        torch.manual_seed(4)
        net = Net().eval()
        from xbarref.io.torch import export
        model = export(net, tmp_path / "f.h5", torch.randn(5, 2, 3))
        names = [n.name for n in model.nodes]
        assert names[:4] == ["flat", "fc", "act", "add"] and "fc_1" in names
        assert "unused" not in names and "skip" not in names
        x = np.random.default_rng(2).standard_normal((7, 2, 3))
        assert_logits_match(torch, net, xbarref.load_model(tmp_path / "f.h5"), x)

    def test_normalization_is_applied_before_the_module(self, torch_module, tmp_path):
        torch = torch_module
        net = small_cnn(torch)
        from xbarref.io.torch import export
        raw = torch.rand(4, 1, 8, 8)
        model = export(net, tmp_path / "n.h5", raw, normalization=dict(mean=[0.4], std=[0.3]))
        x = np.random.default_rng(3).random((6, 1, 8, 8))
        with torch.no_grad():
            ref = net.double()(torch.from_numpy((x - 0.4) / 0.3)).numpy()
        net.float()
        np.testing.assert_allclose(xbarref.load_model(tmp_path / "n.h5")(x), ref,
                                   rtol=1e-10, atol=1e-10 * np.abs(ref).max())
        assert model.normalization["std"].tolist() == [0.3]


class TestExportErrors:
    def export_fails(self, torch, net, example, match, tmp_path):
        from xbarref.io.torch import export
        with pytest.raises(XbarrefError, match=match) as info:
            export(net, tmp_path / "bad.h5", example)
        assert not (tmp_path / "bad.h5").exists()
        return str(info.value)

    def test_gelu_is_named(self, torch_module, tmp_path):
        nn = torch_module.nn
        net = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))
        msg = self.export_fails(torch_module, net, torch_module.zeros(1, 4), "GELU", tmp_path)
        assert "'1'" in msg  # the module's name in the Sequential

    def test_lstm_is_named(self, torch_module, tmp_path):
        nn = torch_module.nn

        class Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(4, 3, batch_first=True)
                self.fc = nn.Linear(3, 2)

            def forward(self, x):
                return self.fc(self.rnn(x)[0][:, -1])

        msg = self.export_fails(torch_module, Seq(), torch_module.zeros(2, 5, 4), "LSTM",
                                tmp_path)
        assert "'rnn'" in msg

    @pytest.mark.parametrize("op, match", [
        ("sigmoid", "torch.sigmoid"),
        ("mean", r"\.mean\(\)"),
        ("scalar", "summand"),
        ("view", "view"),
        ("flatten0", "start_dim=0"),
    ])
    def test_unsupported_functions_are_named(self, torch_module, tmp_path, op, match):
        torch = torch_module
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                y = self.fc(x)
                if op == "sigmoid":
                    y = torch.sigmoid(y)
                elif op == "mean":
                    y = y - y.mean(1, keepdim=True)
                elif op == "scalar":
                    y = y + 1.0
                elif op == "view":
                    y = y.view(-1, 2).view(x.size(0), -1)
                elif op == "flatten0":
                    y = torch.flatten(y, 0)
                return y

        self.export_fails(torch, Net(), torch.zeros(2, 4), match, tmp_path)

    @pytest.mark.parametrize("make, match", [
        (lambda nn: nn.Conv2d(2, 4, 3, groups=2), "groups"),
        (lambda nn: nn.Conv2d(2, 4, 3, dilation=2), "dilation"),
        (lambda nn: nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), "padding_mode"),
        (lambda nn: nn.MaxPool2d(2, ceil_mode=True), "ceil_mode"),
        (lambda nn: nn.AdaptiveAvgPool2d(2), "output size"),
        (lambda nn: nn.BatchNorm2d(2, track_running_stats=False), "track_running_stats"),
    ])
    def test_unsupported_settings(self, torch_module, tmp_path, make, match):
        nn = torch_module.nn
        net = nn.Sequential(make(nn), nn.Flatten()).eval()
        self.export_fails(torch_module, net, torch_module.rand(1, 2, 7, 7), match, tmp_path)

    def test_global_pool_must_be_flattened(self, torch_module, tmp_path):
        nn = torch_module.nn
        net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(3, 2, 1),
                            nn.Flatten())
        self.export_fails(torch_module, net, torch_module.rand(1, 2, 5, 5), "AdaptiveAvgPool2d",
                          tmp_path)

    def test_untraceable_control_flow(self, torch_module, tmp_path):
        nn = torch_module.nn

        class Branchy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 2)

            def forward(self, x):
                if x.sum() > 0:
                    return self.fc(x)
                return -self.fc(x)

        self.export_fails(torch_module, Branchy(), torch_module.ones(1, 3), "torch.fx", tmp_path)

    def test_logit_check_catches_in_place_aliasing(self, torch_module, tmp_path):
        """An in-place ReLU on a tensor read again later: torch.fx's graph (and so the
        export) differs from eager PyTorch; the logit check must refuse it."""
        nn = torch_module.nn

        class Alias(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.relu = nn.ReLU(inplace=True)
                self.out = nn.Linear(4, 2)

            def forward(self, x):
                y = self.fc(x)
                z = self.relu(y)   # also overwrites y in eager mode
                return self.out(y + z)

        torch_module.manual_seed(5)
        self.export_fails(torch_module, Alias().eval(), torch_module.randn(8, 4), "differ",
                          tmp_path)

    def test_bad_arguments(self, torch_module, tmp_path):
        nn = torch_module.nn
        net = nn.Sequential(nn.Linear(4, 2))
        self.export_fails(torch_module, net, torch_module.zeros(2, 4, dtype=torch_module.int64),
                          "example_input", tmp_path)
        self.export_fails(torch_module, net, torch_module.zeros(4), "example_input", tmp_path)
        self.export_fails(torch_module, {"w": 1}, torch_module.zeros(2, 4), "module", tmp_path)
        from xbarref.io.torch import export
        with pytest.raises(XbarrefError, match="classes"):
            export(net, tmp_path / "c.h5", torch_module.zeros(2, 4), classes=["a", "b", "c"])
        assert not (tmp_path / "c.h5").exists()


# --------------------------------------------------------------------------- property
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def conv_pool_nets(draw):
    """(conv kwargs, pool kind and kwargs, input shape) with non-square kernels, strides
    and paddings, including 1 x n and n x 1 inputs."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    conv = dict(in_channels=draw(st.integers(1, 3)), out_channels=draw(st.integers(1, 3)),
                kernel_size=(kh, kw), stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                bias=draw(st.booleans()))
    h = draw(st.integers(max(1, kh - 2 * conv["padding"][0]), 7))
    w = draw(st.integers(max(1, kw - 2 * conv["padding"][1]), 7))
    ho = (h + 2 * conv["padding"][0] - kh) // conv["stride"][0] + 1
    wo = (w + 2 * conv["padding"][1] - kw) // conv["stride"][1] + 1
    pk = (draw(st.integers(1, ho)), draw(st.integers(1, wo)))
    pool = dict(kernel_size=pk, stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=(draw(st.integers(0, pk[0] // 2)), draw(st.integers(0, pk[1] // 2))))
    kind = draw(st.sampled_from(["max", "avg", "avg_exclude_pad"]))
    return conv, kind, pool, (conv["in_channels"], h, w)


@settings(max_examples=15)
@given(spec=conv_pool_nets())
def test_conv_and_pool_settings_are_mapped(torch_module, tmp_path_factory, spec):
    torch = torch_module
    nn = torch.nn
    conv, kind, pool, shape = spec
    if kind == "max":
        pooling = nn.MaxPool2d(**pool)
    else:
        pooling = nn.AvgPool2d(**pool, count_include_pad=(kind == "avg"))
    torch.manual_seed(0)
    net = randomize_bn(torch, nn.Sequential(nn.Conv2d(**conv), nn.BatchNorm2d(conv["out_channels"]),
                                            nn.ReLU(), pooling, nn.Flatten()), 6).eval()
    from xbarref.io.torch import export
    path = tmp_path_factory.mktemp("prop") / "net.h5"
    export(net, path, torch.rand((2,) + shape))
    model = xbarref.load_model(path)
    x = np.random.default_rng(7).standard_normal((3,) + shape)
    with torch.no_grad():
        ref = net.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), ref, rtol=1e-12, atol=1e-12 * max(1, np.abs(ref).max()))
