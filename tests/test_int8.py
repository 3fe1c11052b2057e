"""INT8 on the CPU (issue 17): quantization-aware training, the INT8 export and its checks, and the runtime's
choice of precision. Real components throughout: torch QAT, ONNX Runtime sessions, the CLI in subprocesses.
The CPUs this machine is not (with VNNI, AVX2 only, neither, Arm): the precision choice is tested on real
/proc/cpuinfo texts of them (int8_instructions and cpu_model take them as arguments), not by patching the
machine; the INT8 runtime tests run on whichever of AVX2 or VNNI the machine has."""

import json

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch

from conftest import SAMPLES, run_cli, write_png
from denoise.checkpoint import load_checkpoint
from denoise.errors import DenoiseError
from denoise.export.int8 import kernels_run, match_fake_quant, pair_sum_max, quantize_graph, requantizations
from denoise.export.onnx_export import export_onnx
from denoise.export.precision_check import verification_images
from denoise.model import build_model
from denoise.runtime.denoiser import Denoiser
from denoise.model_files import int8_sibling, read_card
from denoise.runtime.precision import VPMADDUBSW_MAX, cpu_model, int8_instructions
from denoise import quantize as qat
from denoise.datasets import load_images
from denoise.train.data import CropSampler, to_training_tensor
from denoise.train.loop import TrainSettings, distillation_loss, train
from denoise.train.noise import add_noise
from denoise.weights import DEFAULT_CHECKPOINT, DEFAULT_INT8_CHECKPOINT, DEFAULT_MODEL, DEFAULT_RAW_MODEL

HASWELL = "processor : 0\nflags : fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2\n"  # AVX2, no VNNI
# An AMD EPYC (Zen 3) of the team's, 2026-12-07: AVX2, no AVX-512, no VNNI
ZEN3 = ("processor : 0\nvendor_id : AuthenticAMD\nmodel name : AMD EPYC\nflags : fpu vme de pse tsc msr pae mce cx8 apic "
        "sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm "
        "constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 "
        "pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm "
        "cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd ibrs ibpb stibp vmmcall fsgsbase "
        "tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 "
        "xsaves clzero xsaveerptr wbnoinvd arat umip pku ospke vaes vpclmulqdq rdpid fsrm\n")
WESTMERE = "processor : 0\nflags : fpu vme sse sse2 ssse3 sse4_1 sse4_2 popcnt aes\n"  # before AVX2
ICELAKE = "processor : 0\nflags : fpu sse2 avx avx2 avx512f avx512bw avx512_vnni\n"
NEOVERSE_N1 = "processor : 0\nFeatures : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimdrdm lrcp dcpop asimddp\n"
CORTEX_A72 = "processor : 0\nFeatures : fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n"  # Raspberry Pi 4: no dot product
BUNDLED_INT8 = int8_sibling(DEFAULT_MODEL)


def photo_batch(seed: int, sigma: float = 0.1, size: int = 16):
    images = load_images(SAMPLES / "clean", "train")
    clean = to_training_tensor(CropSampler(images, 32, seed=seed).batch(size), "cpu")
    level = torch.full((size,), sigma)
    return add_noise(clean, level, "clip", torch.Generator().manual_seed(seed)), level, clean


def test_qat_fine_tuning_lowers_the_quantized_models_loss():
    """Fake-quantized, the bundled model drifts from its FP32 self; 40 QAT steps (the loop's distillation loss)
    on fresh batches bring it back closer, measured on a batch it never trains on."""
    torch.manual_seed(0)
    state = load_checkpoint(DEFAULT_CHECKPOINT)
    teacher = build_model("fast")
    teacher.load_state_dict(state["model"])
    model = build_model("fast")
    model.load_state_dict(state["model"])
    qat.prepare_qat(model)
    held_noisy, held_level, held_clean = photo_batch(seed=1000, sigma=0.3)
    model.train()
    for seed in range(5):  # observe ranges
        with torch.no_grad():
            model(*photo_batch(seed, sigma=0.3)[:2])
    qat.freeze_ranges(model)

    def held_out_loss():
        with torch.no_grad():
            return distillation_loss(model(held_noisy, held_level), teacher.train()(held_noisy, held_level), held_clean).item()

    before = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)  # a fine-tune's rate: larger steps wreck the weights
    for seed in range(40):
        noisy, level, clean = photo_batch(10 + seed, sigma=0.3, size=8)
        with torch.no_grad():
            target = teacher(noisy, level)
        loss = distillation_loss(model(noisy, level), target, clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.8 * before


def test_prepare_qat_quantizes_all_but_the_ends_and_keeps_parameter_names():
    model = build_model("fast")
    names = [name for name, _ in model.named_parameters()]
    qat.prepare_qat(model)
    assert [name for name, _ in model.named_parameters()] == names
    assert sorted(qat.quantized_layers(model)) == [i for i in range(20) if i not in (0, 1, 3, 15, 17, 18, 19)]
    assert set(qat.float_state(model)) == set(build_model("fast").state_dict())


def test_a_relu_only_output_is_the_next_quantized_convs_input_grid():
    """Tied grids: where a quantized conv's output goes only through a ReLU into the next quantized conv, that conv
    has no grid of its own; the bundled checkpoint stores that grid as both."""
    model = qat.prepare_qat(build_model("fast"))
    # not 2 or 4 (FP32 conv before), not 6, 8, 12, 14 (after a skip output), 16 (after FP32 conv 15)
    assert qat.tied_inputs(model) == {5, 7, 9, 10, 11, 13}
    stored = qat.ranges(qat.quantized_from_checkpoint(load_checkpoint(DEFAULT_INT8_CHECKPOINT)))
    assert stored["tied_inputs"] == [5, 7, 9, 10, 11, 13]
    untied = load_checkpoint(DEFAULT_INT8_CHECKPOINT)["quantization"]["layers"]
    for position in stored["tied_inputs"]:
        assert stored["layers"][str(position)]["input"] == stored["layers"][str(position - 1)]["output"]
        assert stored["layers"][str(position)]["input"] == untied[str(position)]["input"]


def test_a_checkpoint_says_which_convs_it_quantized(tmp_path):
    """Another split of FP32 and INT8 convs (conv 17 INT8 too) round-trips: the checkpoint's ranges name the FP32
    convs, the fake-quantized model and the INT8 file are rebuilt from them, and conv 17 then reads conv 16's grid."""
    model = build_model("fast")
    model.load_state_dict(load_checkpoint(DEFAULT_CHECKPOINT)["model"])
    qat.prepare_qat(model, keep=(0, 1, 18, 19)).train()
    with torch.no_grad():
        model(*photo_batch(0)[:2])
    state = {"config": model.config.to_dict(), "model": qat.float_state(model), "quantization": qat.ranges(model)}
    assert state["quantization"]["float_layers"] == [0, 1, 18, 19] and 17 in state["quantization"]["tied_inputs"]
    rebuilt = qat.quantized_from_checkpoint(state)
    assert sorted(qat.quantized_layers(rebuilt)) == list(range(2, 18))
    torch.save(state, tmp_path / "c17.pt")
    export_onnx(tmp_path / "c17.pt", tmp_path / "m.onnx")
    quantize_graph(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", qat.ranges(rebuilt))
    assert kernels_run(tmp_path / "m.int8.onnx")["QLinearConv"] == 16


def test_train_qat_writes_ranges_and_resumes(tmp_path):
    out = tmp_path / "qat"
    settings = TrainSettings(data=str(SAMPLES / "clean"), out=str(out), steps=6, batch_size=4, lr=1e-5, val_every=3,
                             val_images=1, init=str(DEFAULT_CHECKPOINT), qat=True, protocol="mixed", loss="log-mse")
    train(settings, log=lambda line: None)
    state = load_checkpoint(out / "last.pt")
    assert set(state["quantization"]["layers"]) == {str(i) for i in range(2, 17) if i not in (3, 15)}
    assert state["quantization"]["float_layers"] == [0, 1, 3, 15, 17, 18, 19]
    low, high = state["quantization"]["layers"]["5"]["output"]
    assert low < 0 < high  # pre-ReLU outputs: both signs observed
    assert state["quantization"]["layers"]["9"]["input"] == state["quantization"]["layers"]["8"]["output"]  # tied
    build_model("fast").load_state_dict(state["model"])  # a plain model loads the weights
    settings.steps = 8
    train(settings, resume=True, log=lambda line: None)
    assert load_checkpoint(out / "last.pt")["step"] == 8


def test_qat_needs_a_trained_model_and_a_denoiser(tmp_path):
    result = run_cli("train", "--data", SAMPLES / "clean", "--qat", "--steps", "2", "--out", tmp_path / "a")
    assert result.returncode == 1 and "--init" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("train", "--data", SAMPLES / "clean", "--qat", "--model", "estimator", "--init", DEFAULT_CHECKPOINT,
                     "--steps", "2", "--out", tmp_path / "b")
    assert result.returncode == 1 and "estimator" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def qat_checkpoint():
    """The bundled QAT fine-tune of the bundled model (default.int8.onnx is made from it)."""
    assert "quantization" in load_checkpoint(DEFAULT_INT8_CHECKPOINT)
    return DEFAULT_INT8_CHECKPOINT


def test_int8_onnx_matches_the_fake_quantized_model_and_runs_integer_kernels(qat_checkpoint, tmp_path):
    fp32 = tmp_path / "m.onnx"
    export_onnx(qat_checkpoint, fp32)
    fake_quant = qat.quantized_from_checkpoint(load_checkpoint(qat_checkpoint))
    quantization = qat.ranges(fake_quant)
    quantize_graph(fp32, tmp_path / "m.int8.onnx", quantization)
    for match in match_fake_quant(tmp_path / "m.int8.onnx", fake_quant, verification_images()):
        assert match.ok, match.line()
    ran = kernels_run(tmp_path / "m.int8.onnx")
    assert ran["QLinearConv"] == 13  # every quantized Conv ran as an integer kernel
    convs = sum(count for op, count in ran.items() if "Conv" in op and op != "QLinearConv")
    assert convs == 7, ran  # the seven FP32 ones (ONNX Runtime may fuse their ReLU: FusedConv)
    # tied grids: a tied conv reads the previous conv's quantized output itself, with no ReLU or Q between
    nodes = {out: node for node in onnx.load(str(tmp_path / "m.int8.onnx")).graph.node for out in node.output}
    for position in quantization["tied_inputs"]:
        dq = nodes[nodes[f"conv{position}_raw"].input[0]]
        assert dq.op_type == "DequantizeLinear" and nodes[dq.input[0]].name == f"conv{position - 1}_output_Q"
    # ... and ONNX Runtime hands UINT8 from QLinearConv to QLinearConv there: the only DequantizeLinear ->
    # QuantizeLinear pairs left after its optimizations are the 2 re-gridding an encoder's skip output for the next
    # conv (convs 5 and 7: signed range in, ReLU range out; conv 3 is FP32); with a grid per conv there were 11.
    assert requantizations(tmp_path / "m.int8.onnx") == 2


def test_export_int8_cli_makes_the_bundle_as_it_was_made(qat_checkpoint, tmp_path):
    """The bundled model's FP32 export with the INT8 sibling from its QAT fine-tune, checked against that FP32."""
    result = run_cli("export", "--int8", qat_checkpoint, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.int8.onnx").is_file() and "13 QLinearConv" in result.stdout
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["int8"]["quantized_convs"] == 13 and card["int8"]["qlinearconv_kernels"] == 13
    assert card["int8"]["sigma_max"] >= 0.1 and card["checkpoint_sha256"] == read_card()["checkpoint_sha256"]
    assert card["int8"]["verified_on"] == "procedural test images"
    assert all(drop <= 0.1 for sigma, drop in card["int8"]["psnr_drop_db"].items() if float(sigma) <= card["int8"]["sigma_max"])
    # the bundled file, made again: the same integer weights, scales and zero points (not the same bytes: the
    # exporter records source paths of the checkout in node metadata)
    made, bundled = (onnx.load(str(path)).graph.initializer for path in (tmp_path / "model.int8.onnx", BUNDLED_INT8))
    made, bundled = ({t.name: onnx.numpy_helper.to_array(t) for t in inits} for inits in (made, bundled))
    assert made.keys() == bundled.keys() and all(np.array_equal(made[k], bundled[k]) for k in made)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "model.int8.onnx")).metadata_props}
    assert meta["precision"] == "int8" and "denoise_card" in meta


def test_export_int8_fails_and_removes_the_file_when_the_ranges_are_wrong(qat_checkpoint, tmp_path):
    """Ranges a tenth of the trained ones clip most activations: the PSNR check must catch it."""
    state = load_checkpoint(qat_checkpoint)
    for entry in state["quantization"]["layers"].values():
        entry["input"] = [v / 10 for v in entry["input"]]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    result = run_cli("export", broken, "--int8", "--out", tmp_path / "out")  # its own FP32 is the reference
    assert result.returncode == 1 and "INT8 model failed verification (file removed)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "model.int8.onnx").exists() and (tmp_path / "out" / "model.onnx").exists()


def test_export_int8_of_a_plain_checkpoint_says_what_to_do(tmp_path):
    state = load_checkpoint(DEFAULT_CHECKPOINT)
    state.pop("quantization", None)
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    result = run_cli("export", plain, "--int8", "--out", tmp_path / "out")
    assert result.returncode == 1 and "--qat" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_int8_instructions_from_real_cpuinfo_texts():
    assert int8_instructions(HASWELL) == "avx2" and int8_instructions(ZEN3) == "avx2"
    assert int8_instructions(ICELAKE) == "avx512_vnni"
    assert int8_instructions(NEOVERSE_N1) == "asimddp"
    assert int8_instructions(CORTEX_A72) is None and int8_instructions(WESTMERE) is None


def test_cpu_model_choice(tmp_path):
    fp32 = tmp_path / "model.onnx"
    fp32.write_bytes(b"")
    card = {"int8": {"sigma_max": 0.3, "pair_sum_max": 255 * 128}}
    assert cpu_model(fp32, "auto", "avx512_vnni", card)[:2] == (fp32, "fp32")  # no INT8 sibling
    with pytest.raises(DenoiseError, match="no INT8 model"):
        cpu_model(fp32, "int8", "avx512_vnni", card)
    int8_sibling(fp32).write_bytes(b"")
    assert cpu_model(fp32, "auto", "avx512_vnni", card)[:2] == (int8_sibling(fp32), "int8")
    assert cpu_model(fp32, "auto", None, card)[:2] == (fp32, "fp32")  # neither AVX2 nor a dot product: FP32
    assert cpu_model(fp32, "fp32", "avx512_vnni", card)[:2] == (fp32, "fp32")
    with pytest.raises(DenoiseError, match="none of AVX2, VNNI"):
        cpu_model(fp32, "int8", None, card)
    assert cpu_model(fp32, "auto", "avx512_vnni", {})[:2] == (fp32, "fp32")  # a card that does not say its INT8 range


def test_avx2_runs_int8_only_where_the_card_proves_16_bit_sums_cannot_saturate(tmp_path):
    fp32 = tmp_path / "model.onnx"
    fp32.write_bytes(b"")
    int8_sibling(fp32).write_bytes(b"")
    safe = {"int8": {"sigma_max": 0.3, "pair_sum_max": 255 * 128}}
    choice = cpu_model(fp32, "auto", int8_instructions(ZEN3), safe)
    assert choice[:2] == (int8_sibling(fp32), "int8") and "AVX2" in choice.why
    for legacy in ({"int8": {"sigma_max": 0.3}}, {"int8": {"sigma_max": 0.3, "pair_sum_max": 255 * 254}}):
        choice = cpu_model(fp32, "auto", "avx2", legacy)  # made before 7-bit weights (or not proved): FP32
        assert choice[:2] == (fp32, "fp32") and "16-bit sums" in choice.why
        with pytest.raises(DenoiseError, match="16-bit sums"):
            cpu_model(fp32, "int8", "avx2", legacy)
        assert cpu_model(fp32, "auto", "avx512_vnni", legacy).precision == "int8"  # VNNI's 32-bit sums: fine


@pytest.mark.parametrize("model", [DEFAULT_MODEL, DEFAULT_RAW_MODEL], ids=["general", "raw"])
def test_the_bundled_int8_models_cannot_saturate_avx2s_16_bit_sums(model):
    """On x86 without VNNI, MLAS multiplies UINT8 x INT8 with vpmaddubsw: two products of one output channel
    summed into a saturating 16-bit integer (runtime.precision). Every weight within 64 of zero keeps that sum
    at most 255 * 128 = 32640: checked on the file itself, and the card must say the same."""
    worst = pair_sum_max(int8_sibling(model))
    assert worst <= VPMADDUBSW_MAX, f"a pair of weights can reach {worst} > {VPMADDUBSW_MAX}"
    assert read_card(model)["int8"]["pair_sum_max"] == worst
    weights = [onnx.numpy_helper.to_array(init) for init in onnx.load(str(int8_sibling(model))).graph.initializer
               if init.data_type == onnx.TensorProto.INT8 and init.name.endswith("_weight_q")]
    assert len(weights) == 13 and max(int(np.abs(w.astype(int)).max()) for w in weights) <= qat.WEIGHT_LIMIT == 64


def test_pair_sum_max_sees_an_8_bit_weight(tmp_path):
    """The check fails a file with one weight beyond 7 bits in a channel whose next largest is 64 (the
    legacy grid's files): 255 * (127 + 64) = 48705."""
    model = onnx.load(str(BUNDLED_INT8))
    init = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8)
    values = onnx.numpy_helper.to_array(init).copy()
    values[0] = 0
    values[0].flat[:2] = [127, -64]
    init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    onnx.save(model, str(tmp_path / "m.int8.onnx"))
    assert pair_sum_max(tmp_path / "m.int8.onnx") == max(255 * 191, pair_sum_max(BUNDLED_INT8))


def need_int8_cpu():
    """The one skip for tests that run the INT8 model: it needs AVX2 or a dot product (the CI machines are an Intel
    with AVX-512 VNNI and an AMD Zen 3 with AVX2 only: it runs on both). Elsewhere INT8 is refused (tested above)."""
    if int8_instructions() is None:
        pytest.skip("this CPU has none of the INT8 instructions (/proc/cpuinfo flags avx2, avx512_vnni, avx_vnni, "
                    "amx_int8, asimddp): --precision int8 is refused and auto runs FP32 here (tested above)")


def test_the_bundled_int8_model_tiles_exactly_and_stays_close_to_fp32(rng):
    need_int8_cpu()
    assert BUNDLED_INT8.is_file()
    image = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    with Denoiser(backend="cpu", tile=64, precision="int8") as tiled, \
            Denoiser(backend="cpu", tile=512, precision="int8") as whole, \
            Denoiser(backend="cpu", precision="fp32") as fp32:
        assert tiled.backend_name == "onnxruntime-cpu-int8" and fp32.backend_name == "onnxruntime-cpu"
        a, b = tiled.denoise(image, sigma=0.1), whole.denoise(image, sigma=0.1)
        assert np.array_equal(a, b)  # integer kernels: tiles equal the whole image exactly
        c = fp32.denoise(image, sigma=0.1)
        assert np.abs(a.astype(int) - c).mean() < 1.0  # INT8 is close to FP32, not another model


def test_precision_int8_where_it_cannot_run_is_one_line(tmp_path, rng):
    write_png(tmp_path / "in" / "a.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    export_onnx(DEFAULT_CHECKPOINT, tmp_path / "m" / "model.onnx")  # no INT8 sibling beside it
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.1", "--precision", "int8",
                     "--model", tmp_path / "m" / "model.onnx")
    assert result.returncode == 1 and "no INT8 model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.1", "--precision", "int8",
                     "--backend", "tensorrt")
    assert result.returncode == 1 and "runs on the CPU" in result.stderr and "Traceback" not in result.stderr


def test_manifest_and_info_say_int8_ran(tmp_path, rng):
    """What auto chooses on this CPU, said in the manifest and by `denoise info`: INT8 with AVX2 or VNNI alike (the
    bundled card proves AVX2's 16-bit sums exact), so it asserts the same on either CI machine."""
    need_int8_cpu()
    write_png(tmp_path / "in" / "a.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.1", "--json", "--backend", "cpu",
                     "--precision", "auto")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()[0])
    assert record["backend"] == "onnxruntime-cpu-int8" and record["precision_why"].startswith("this CPU runs INT8 with")
    info = run_cli("info", "--json")
    report = json.loads(info.stdout)
    assert report["cpu_int8"]["instructions"] and report["cpu_int8"]["auto_runs"] == "int8"
    assert report["cpu_int8"]["why"] == record["precision_why"]
    assert "CPU precision (--precision auto): INT8 -- this CPU runs INT8 with" in run_cli("info").stdout


def test_skip_outputs_are_the_convs_whose_output_reaches_more_than_a_relu(tmp_path):
    """quantize.skip_outputs restates CAE.forward's skip rule; the exported graph says where the outputs go."""
    export_onnx(DEFAULT_CHECKPOINT, tmp_path / "m.onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    beyond_relu = {k for k, conv in enumerate(convs) if set(consumers[conv.output[0]]) != {"Relu"}}
    assert beyond_relu - {len(convs) - 1} == qat.skip_outputs(build_model("fast"))  # the last: FP32, no ReLU


def test_noise_above_int8s_verified_range_runs_in_fp32(tmp_path, rng):
    need_int8_cpu()
    limit = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["int8"]["sigma_max"]
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    high = min(1.0, limit + 0.1)
    with Denoiser(backend="cpu", precision="int8") as int8, Denoiser(backend="cpu", precision="fp32") as fp32:
        assert np.array_equal(int8.denoise(image, sigma=high), fp32.denoise(image, sigma=high))
        assert not np.array_equal(int8.denoise(image, sigma=limit), fp32.denoise(image, sigma=limit))
        assert int8.route([high])[0] == "onnxruntime-cpu" and int8.route([limit])[0] == "onnxruntime-cpu-int8"
    write_png(tmp_path / "in" / "a.png", image)
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", str(high), "--backend", "cpu",
                     "--precision", "int8")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()[0])
    assert record["backend"] == "onnxruntime-cpu"  # the manifest says what ran on this file, and why
    assert record["precision_why"].startswith("its noise level goes above")
