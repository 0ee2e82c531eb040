"""The shape every method fits (issue #30): a method is one file plus one registry line,
its own settings reach it from the command line and from Python, and no module of the
project imports another that imports it back."""
import ast
import csv
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import methods
import Pixel2Pixel_syn
from config import Settings, check, setting
from helpers import ROOT
from methods.interface import Denoised, Method
from utils import UserError


# ---------------------------------------------------------------------------- a toy method, as a new file would be
@dataclass(frozen=True)
class ToySettings:
    strength: float = setting(0.5, "how far every pixel moves towards its channel's mean")

    def check(self) -> None:
        check([(0 <= self.strength <= 1, f"--strength {self.strength}: must be in [0, 1]")])


def toy_denoise(noisy: torch.Tensor, settings: Settings, name: str = "image") -> Denoised:
    mean = noisy.mean(dim=(1, 2), keepdim=True)
    image = (noisy + settings.params.strength * (mean - noisy)).clamp(0, 1)
    return Denoised(image, {"toy": 0.0}, fields={"toy_mean": f"{float(mean.mean()):.4f}"})


TOY = Method(settings=ToySettings, denoise=toy_denoise, tag=lambda settings: ["toy", f"seed{settings.seed}"],
             check_image=lambda height, width, channels, settings: 4 * height * width * channels,
             csv_fields=("toy_mean", "toy_seconds"), precisions=())


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(methods.METHODS, "toy", TOY)  # the one registry line


def test_a_new_method_runs_through_the_script_with_its_own_setting(toy, tmp_path, clean_dataset):
    summary = Pixel2Pixel_syn.main(["--data_path", str(clean_dataset), "--dataset", "tiny", "--nt", "gauss",
                                    "--nl", "25", "--device", "cpu", "--method", "toy", "--strength", "0.25",
                                    "--out_image", str(tmp_path / "out")])
    # A setting away from its default names the folder, so runs of two values never mix.
    assert os.path.basename(summary["run_dir"]) == "gauss_25_toy_seed123_strength0.25"
    with open(summary["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == ["gray.png", "rgb.png"]
    for row in rows:
        assert float(row["toy_mean"]) > 0 and row["toy_seconds"] == "0.00" and row["precision"] == "n/a"
        assert float(row["psnr"]) > float(row["noisy_psnr"])  # a quarter of the way to the mean smooths noise


def test_a_new_methods_setting_is_in_help_under_its_name(toy, capsys):
    with pytest.raises(SystemExit):
        Pixel2Pixel_syn.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "toy's settings" in text and "--strength" in text.split("toy's settings")[1]


def test_a_new_method_from_python_takes_and_checks_its_setting(toy):
    noisy = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    half = methods.denoise(noisy, method="toy")
    none = methods.denoise(noisy, method="toy", strength=0)
    np.testing.assert_allclose(none, noisy, atol=1e-6)
    assert half.std() < noisy.std()
    for wrong in ("strong", 2.0, True):
        with pytest.raises(UserError, match="--strength"):
            methods.denoise(noisy, method="toy", strength=wrong)
    with pytest.raises(UserError, match=r"--strength\b.*\btoy\b.*\bnlm\b"):
        methods.denoise(noisy, method="nlm", strength=0.1)


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_every_method_declares_settings_the_command_line_can_set(method):
    """Each field has a help text and a default that passes the method's own checks."""
    chosen = methods.settings(method, device="cpu")
    assert isinstance(chosen.params, methods.METHODS[method].settings)
    for name, item in methods.own_settings(method).items():
        assert item.metadata["help"], name


# ---------------------------------------------------------------------------- no import cycles
def project_imports() -> dict[str, set[str]]:
    """module -> the project's modules it imports anywhere in its file, functions included."""
    files = {}
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name not in ("tests", "results")]
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                files[module] = path
    for name in ("results.reproduce",):
        files[name] = os.path.join(ROOT, *name.split(".")) + ".py"
    graph = {}
    for module, path in files.items():
        with open(path) as handle:
            tree = ast.parse(handle.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[module] = {name for name in found if name in files and name != module}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = project_imports()
    assert "methods" in graph["cli"] and "config" in graph["methods"]  # the walk sees imports
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph[module]):
            assert state.get(imported) != "open", f"import cycle: {' -> '.join([*path, imported])}"
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not graph["config"] & {"methods", *(name for name in graph if name.startswith("methods."))}
