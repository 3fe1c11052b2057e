import pytest
import torch

from denoise.model import CONFIGS, CAE, CAEConfig, EstimatorConfig, build_model, count_parameters

DENOISERS = sorted(name for name, config in CONFIGS.items() if isinstance(config, CAEConfig))


@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 17, 45), (3, 3, 1, 1), (1, 3, 64, 7)])
def test_output_shape_matches_input(name, shape):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(shape), torch.full((shape[0],), 0.3))
    assert out.shape == shape
    assert out.min() >= 0 and out.max() <= 1  # sigmoid (seed) or clipped (linear) at inference


def test_seed_configuration_is_the_notebooks():
    model = build_model("seed")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 10 and len(deconvs) == 10
    assert all(m.kernel_size == (3, 3) and m.stride == (1, 1) for m in convs + deconvs)
    assert convs[0].in_channels == 3 and all(m.out_channels == 128 for m in convs)
    assert deconvs[-1].out_channels == 3 and all(m.out_channels == 128 for m in deconvs[:-1])
    # 2.66 M parameters, as the seed notebook reports.
    assert count_parameters(model) == 2_663_555


def test_seed_skips_wire_mirrored_layers():
    """d2 + s4(c8), d4 + s3(c6), d6 + s2(c4), d8 + s1(c2), each before the ReLU: recorded with hooks."""
    model = build_model("seed").eval()
    enc_out, dec_out = {}, {}
    for i, conv in enumerate(model.encoder, start=1):
        conv.register_forward_hook(lambda m, a, o, i=i: enc_out.__setitem__(i, o))
    for j, deconv in enumerate(model.decoder, start=1):
        deconv.register_forward_hook(lambda m, a, o, j=j: dec_out.__setitem__(j, o))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        model(x, torch.zeros(1))
        # The input of d3 is relu(d2 + c8); of d5 relu(d4 + c6); d7: relu(d6 + c4); d9: relu(d8 + c2).
        for j, i in [(2, 8), (4, 6), (6, 4), (8, 2)]:
            expected = model.decoder[j](torch.relu(dec_out[j] + enc_out[i]))
            assert torch.allclose(dec_out[j + 1], expected, atol=1e-6)


def test_residual_sigma_model_uses_sigma():
    model = build_model("fast").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a = model(x, torch.tensor([0.1]))
        b = model(x, torch.tensor([0.9]))
    assert not torch.allclose(a, b)


def test_config_validation():
    with pytest.raises(ValueError):
        CAEConfig(layers=9)
    with pytest.raises(ValueError):
        build_model("nope")
    assert isinstance(build_model(CAEConfig(channels=8, layers=4)), CAE)


@pytest.mark.parametrize("name", DENOISERS)
def test_plain_convolution_copy_is_identical(name):
    from denoise.model import with_plain_convolutions

    torch.manual_seed(0)
    model = build_model(name).eval()
    plain = with_plain_convolutions(model)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in plain.modules())
    x, s = torch.rand(2, 3, 19, 26), torch.tensor([0.2, 0.7])
    with torch.no_grad():
        assert torch.allclose(plain(x, s), model(x, s), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 17, 45), (3, 3, 1, 1)])
def test_estimator_gives_a_nonnegative_map_of_the_image_size(shape):
    model = build_model("estimator").eval()
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert out.shape == (shape[0], 1) + shape[2:] and out.min() >= 0


@pytest.mark.parametrize("shuffle", [1, 2, 3])
def test_the_strided_estimator_export_uses_gives_the_estimators_map(shuffle):
    """StridedNoiseEstimator (the copy export writes) folds the pixel-unshuffle into its first convolution: the
    same map as the estimator, at sizes that are and are not multiples of the shuffle, where the replicate padding
    and the map's cut-back matter."""
    from denoise.model import StridedNoiseEstimator

    torch.manual_seed(shuffle)
    model = build_model(EstimatorConfig(shuffle=shuffle, pool=5)).eval()
    for p in model.parameters():  # weights that make every input pixel count, the bias included
        torch.nn.init.uniform_(p, -0.3, 0.3)
    strided = StridedNoiseEstimator(model)
    for shape in [(2, 3, 24, 30), (1, 3, 17, 45), (1, 3, 1, 5)]:
        x = torch.rand(shape)
        with torch.no_grad():
            want, got = model(x), strided(x)
        assert got.shape == want.shape == (shape[0], 1) + shape[2:]
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5), (got - want).abs().max()
        if min(shape[2:]) > 5:  # a map that varies: a misplaced weight would show
            assert want.std() > 1e-4


def test_a_map_and_the_equal_constant_give_the_same_result():
    model = build_model("fast").eval()
    x = torch.rand(2, 3, 21, 34)
    with torch.no_grad():
        constant = model(x, torch.tensor([0.05, 0.2]))
        mapped = model(x, torch.tensor([0.05, 0.2]).reshape(2, 1, 1, 1).expand(2, 1, 21, 34).contiguous())
        varied = model(x, torch.linspace(0.05, 0.2, 34).expand(2, 1, 21, 34).contiguous())
    assert torch.equal(constant, mapped)
    assert (varied - constant).abs().max() > 1e-3  # and a map that varies is really read


def test_estimator_receptive_radius_is_what_the_network_sees():
    """A change at one pixel moves the map no farther than the stated radius (so tile overlaps are right)."""
    config = EstimatorConfig()
    model = build_model(config).eval()
    for p in model.parameters():  # positive weights: every path carries the change
        torch.nn.init.uniform_(p, 0.01, 0.1)
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[0, :, 32, 32] += 1.0
    with torch.no_grad():
        changed = (model(x) - model(y)).abs()[0, 0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = max((rows - 32).abs().max(), (cols - 32).abs().max()).item()
    assert 0 < reach <= config.receptive_radius
