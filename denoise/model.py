"""The symmetric convolutional auto-encoder (CAE) family, shared by training and export.

Every member is the RED-Net design of the seed notebook: a stack of 3x3 convolutions (encoder), a
mirrored stack of 3x3 transposed convolutions (decoder), ReLU after every layer, no pooling, and a
skip connection that adds every second encoder layer's output (taken before its ReLU) to its
mirrored decoder layer (before that layer's ReLU).

Three switches turn the seed into the models we ship, each a documented idea from the literature:

* ``residual``: the network predicts the noise and subtracts it from the input (DnCNN).
* ``sigma_map``: the noise level is fed in as an extra input channel, so one network covers every
  sigma (FFDNet). It is a per-pixel map (camera noise varies with brightness and colour); one number
  fills it.
* ``shuffle``: pixel-unshuffle by this factor on the way in and pixel-shuffle on the way out, so
  every layer runs at 1/shuffle the resolution (FFDNet) -- shuffle**2 times fewer multiply-adds.

The model takes ``noisy`` [N,3,H,W] in [0,1] and ``sigma`` [N,1,H,W] (or [N]: one level per image) on
the [0,1] intensity scale, and accepts any H and W: alignment padding for the pixel-shuffle lives here and
nowhere else. At half resolution the map is the mean of each 2x2 block, so a constant map is that constant.

The noise-level estimator of ``--sigma auto`` (``NoiseEstimator``) lives here too: a small network from
the noisy image to the noise map (CBDNet's design, Guo et al. 2019), at the denoiser's resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CAEConfig:
    """Settings of one CAE; saved in every checkpoint so the model can be rebuilt from it alone."""

    channels: int = 128  # width of every hidden layer
    layers: int = 10  # conv layers in the encoder (and transposed-conv layers in the decoder); even
    kernel: int = 3
    residual: bool = False  # predict the noise instead of the clean image
    sigma_map: bool = False  # noise level as an extra input channel
    shuffle: int = 1  # pixel-unshuffle factor (1 = full resolution, as the seed)
    output: str = "sigmoid"  # "sigmoid" (the seed) or "linear" (clipped to [0,1] at inference)

    def __post_init__(self):
        if self.layers < 2 or self.layers % 2:
            raise ValueError(f"layers must be an even number >= 2, got {self.layers}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        if self.shuffle < 1:
            raise ValueError(f"shuffle must be >= 1, got {self.shuffle}")
        if self.output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {self.output!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def skip_layers(self) -> tuple[int, ...]:
        """The skip connections (1-based layer numbers): every second layer but the last. Encoder layer i's
        output, before its ReLU, is added to decoder layer ``layers - i``'s output, before that one's ReLU:
        the same numbers on both sides, mirrored. CAE.forward wires them; quantize.skip_outputs reads them."""
        return tuple(range(2, self.layers, 2))

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that influence one output pixel (for tile overlap)."""
        per_layer = self.kernel // 2
        return 2 * self.layers * per_layer * self.shuffle + (self.shuffle - 1)

    def macs_per_pixel(self) -> float:
        """Multiply-adds per output pixel (full resolution), convolutions only."""
        s2 = self.shuffle * self.shuffle
        k2 = self.kernel * self.kernel
        c_in = 3 * s2 + (1 if self.sigma_map else 0)
        c_out = 3 * s2
        hidden = self.channels * self.channels * k2 * (2 * self.layers - 2)
        edges = (c_in + c_out) * self.channels * k2
        return (hidden + edges) / s2


@dataclass(frozen=True)
class EstimatorConfig:
    """The noise-level estimator: ``layers`` 3x3 convolutions of ``channels`` at 1/``shuffle`` resolution, a
    ``pool`` x ``pool`` local mean of those features, then two 1x1 convolutions to the level."""

    kind: str = "estimator"  # tells a checkpoint's config apart from a CAEConfig
    channels: int = 32
    layers: int = 3
    pool: int = 15
    shuffle: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def receptive_radius(self) -> int:
        return (self.layers + self.pool // 2) * self.shuffle + (self.shuffle - 1)

    def macs_per_pixel(self) -> float:
        c, s2 = self.channels, self.shuffle * self.shuffle
        return (9 * (3 * s2 * c + (self.layers - 1) * c * c) + c * c + c) / s2


# Named configurations: a table, not a registry.
CONFIGS = {
    # The seed notebook, exactly: 10 conv + 10 transposed conv, 128 channels, sigmoid output.
    "seed": CAEConfig(),
    # Residual learning and a noise-level map at full resolution: one model for every sigma.
    "residual": CAEConfig(channels=64, layers=10, residual=True, sigma_map=True, shuffle=1, output="linear"),
    # The default: the same at half resolution (pixel-unshuffle in, pixel-shuffle out), 4x cheaper.
    "fast": CAEConfig(channels=64, layers=10, residual=True, sigma_map=True, shuffle=2, output="linear"),
    # The noise-map estimator of --sigma auto (trained on its own, then run before the denoiser).
    "estimator": EstimatorConfig(),
}


class CAE(nn.Module):
    def __init__(self, config: CAEConfig):
        super().__init__()
        self.config = config
        c, k, s = config.channels, config.kernel, config.shuffle
        pad = k // 2
        c_in = 3 * s * s + (1 if config.sigma_map else 0)
        c_out = 3 * s * s
        self.encoder = nn.ModuleList(
            nn.Conv2d(c_in if i == 0 else c, c, k, padding=pad) for i in range(config.layers)
        )
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(c, c_out if i == config.layers - 1 else c, k, padding=pad)
            for i in range(config.layers)
        )

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        h, w = noisy.shape[-2:]
        x = noisy
        if cfg.shuffle > 1:
            # Replicate-pad to a multiple of the shuffle factor (works for 1x1 images too).
            pad_h = (-h) % cfg.shuffle
            pad_w = (-w) % cfg.shuffle
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            x = F.pixel_unshuffle(x, cfg.shuffle)
        if cfg.sigma_map:
            x = torch.cat([x, level_channel(sigma, noisy, cfg.shuffle).to(x.dtype)], dim=1)

        skips = []
        n, skip_layers = cfg.layers, cfg.skip_layers
        for i, conv in enumerate(self.encoder, start=1):
            x = conv(x)
            if i in skip_layers:
                skips.append(x)  # s1..s(n/2-1), before the ReLU as in the seed
            x = F.relu(x)
        for j, deconv in enumerate(self.decoder, start=1):
            x = deconv(x)
            if j == n:
                break
            if j in skip_layers:
                x = x + skips.pop()  # d2 + s(last), d4 + s(last-1), ... mirrored
            x = F.relu(x)

        if cfg.shuffle > 1:
            x = F.pixel_shuffle(x, cfg.shuffle)[..., :h, :w]
        if cfg.residual:
            x = noisy - x
        if cfg.output == "sigmoid":
            x = torch.sigmoid(x)
        elif not self.training:
            x = x.clamp(0.0, 1.0)  # unclipped while training, so the loss sees every error
        return x


def level_channel(sigma: torch.Tensor, noisy: torch.Tensor, shuffle: int) -> torch.Tensor:
    """The noise level as one input channel at the network's resolution: ``sigma`` [N] (one level per
    image) or [N,1,H,W] (a map of noisy's size), replicate-padded and 2x2-averaged like the pixels."""
    n, _, h, w = noisy.shape
    if sigma.dim() == 1:
        return sigma.reshape(-1, 1, 1, 1) * torch.ones_like(noisy[:, :1, ::shuffle, ::shuffle])
    if shuffle > 1:
        sigma = F.pad(sigma, (0, (-w) % shuffle, 0, (-h) % shuffle), mode="replicate")
        sigma = F.avg_pool2d(sigma, shuffle)
    return sigma


class NoiseEstimator(nn.Module):
    """noisy [N,3,H,W] -> noise level map [N,1,H,W] (>= 0, the [0,1] scale).

    The local mean of the features (``pool``) is what makes it an estimator of a level rather than of each
    pixel's noise: a noise level is a statistic over a neighbourhood (CBDNet's estimator gets there by
    depth; a mean is cheaper). Replicate-pads to the shuffle factor, as the CAE does, so both align on the
    same pixel grid and a tile cut for the denoiser is also exact for the estimator. The map is constant
    over each shuffle block."""

    def __init__(self, config: EstimatorConfig):
        super().__init__()
        self.config = config
        c, s = config.channels, config.shuffle
        widths = [3 * s * s] + [c] * config.layers
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        self.mix = nn.Conv2d(c, c, 1)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        s, pool = self.config.shuffle, self.config.pool
        h, w = noisy.shape[-2:]
        x = F.pad(noisy, (0, (-w) % s, 0, (-h) % s), mode="replicate") if s > 1 else noisy
        x = self.features(x)
        # The pool x pool mean as a column mean then a row mean: the same numbers (count_include_pad=False counts
        # a rectangle), at 2 x pool additions per value instead of pool ** 2.
        x = F.avg_pool2d(x, (pool, 1), stride=1, padding=(pool // 2, 0), count_include_pad=False)
        x = F.avg_pool2d(x, (1, pool), stride=1, padding=(0, pool // 2), count_include_pad=False)
        level = F.softplus(self.out(F.relu(self.mix(x))) - 3.0) * 0.5  # starts near 0.025, a typical level
        if s > 1:
            level = F.interpolate(level, scale_factor=s, mode="nearest")[..., :h, :w]  # each value over its s x s block
        return level

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions' features at 1/shuffle resolution of an image padded to a multiple of shuffle."""
        s = self.config.shuffle
        x = F.pixel_unshuffle(x, s) if s > 1 else x
        for conv in self.convs:
            x = F.relu(conv(x))
        return x


class StridedNoiseEstimator(NoiseEstimator):
    """An inference copy of a NoiseEstimator whose pixel-unshuffle and first 3x3 convolution are one convolution
    of 3 shuffle x 3 shuffle with stride shuffle on the full-resolution image: the same weights rearranged, the
    same numbers, without the unshuffle's transpose, which ONNX Runtime's CPU runs slowly (BENCHMARKS.md, "What
    `auto` costs, brought to within 10% in FP32"). Export uses this copy and verifies it against the original model."""

    def __init__(self, model: NoiseEstimator):
        super().__init__(model.config)
        self.load_state_dict(model.state_dict())
        s, first = model.config.shuffle, model.convs[0]
        self.strided = nn.Conv2d(3, first.out_channels, 3 * s, stride=s, padding=s)
        weight = first.weight.detach().reshape(first.out_channels, 3, s, s, 3, 3)  # [out, colour, dy, dx, ky, kx]
        with torch.no_grad():  # the unshuffled channel colour * s * s + dy * s + dx is pixel (s ky + dy, s kx + dx)
            self.strided.weight.copy_(weight.permute(0, 1, 4, 2, 5, 3).reshape(first.out_channels, 3, 3 * s, 3 * s))
            self.strided.bias.copy_(first.bias)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.strided(x))
        for conv in self.convs[1:]:
            x = F.relu(conv(x))
        return x


def with_plain_convolutions(model: CAE) -> CAE:
    """An inference copy in which every stride-1 transposed convolution is the equivalent convolution
    (weights transposed in/out and flipped in space): identical results, but ONNX Runtime's CPU Conv
    kernels run it faster than its ConvTranspose ones (BENCHMARKS.md, "Runtime: end to end vs pure inference vs
    PyTorch eager"). Export uses this copy and verifies it against the original model."""
    copy = CAE(model.config)
    copy.load_state_dict(model.state_dict())
    for index, deconv in enumerate(copy.decoder):
        conv = nn.Conv2d(deconv.in_channels, deconv.out_channels, deconv.kernel_size, padding=deconv.padding)
        with torch.no_grad():
            conv.weight.copy_(deconv.weight.transpose(0, 1).flip(-1, -2))
            conv.bias.copy_(deconv.bias)
        copy.decoder[index] = conv
    return copy.eval()


def config_from_dict(values: dict) -> CAEConfig | EstimatorConfig:
    """The config a checkpoint stored (``to_dict``), as its dataclass."""
    if values.get("kind") == "estimator":
        return EstimatorConfig(**values)
    return CAEConfig(**values)


def build_model(config: CAEConfig | EstimatorConfig | str) -> CAE | NoiseEstimator:
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown model config {config!r}; choose one of {sorted(CONFIGS)}")
        config = CONFIGS[config]
    if isinstance(config, EstimatorConfig):
        return NoiseEstimator(config)
    return CAE(config)


def is_estimator(model) -> bool:
    return isinstance(model, NoiseEstimator)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
