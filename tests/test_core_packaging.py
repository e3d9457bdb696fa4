"""Packaging: extras named in messages exist, namespace packages stay open, typed leaves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import crossrank
from crossrank._optional import missing_extra

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])

LEAVES = {
    "crossrank": ROOT / "src" / "crossrank",
    "haystack": ROOT
    / "integrations/haystack/src/haystack_integrations/components/rankers/crossrank",
    "langchain": ROOT / "integrations/langchain/src/langchain_crossrank",
    "llama_index": ROOT / "integrations/llama_index/src/llama_index/postprocessor/crossrank_rerank",
}
NAMESPACE_LEVELS = [
    ROOT / "integrations/haystack/src/haystack_integrations",
    ROOT / "integrations/haystack/src/haystack_integrations/components",
    ROOT / "integrations/haystack/src/haystack_integrations/components/rankers",
    ROOT / "integrations/llama_index/src/llama_index",
    ROOT / "integrations/llama_index/src/llama_index/postprocessor",
]


def _sources() -> list[Path]:
    return [
        p for base in ("src", "integrations", "docs", "examples") for p in (ROOT / base).rglob("*")
        if p.suffix in (".py", ".md") and p.is_file()
    ] + [ROOT / "README.md"]


def test_every_extra_named_anywhere_exists() -> None:
    named: set[tuple[str, str]] = set()
    for path in _sources():
        for extra_list in re.findall(r'crossrank\[([a-z0-9_,\- ]+)\]', path.read_text()):
            for extra in extra_list.split(","):
                named.add((extra.strip(), str(path.relative_to(ROOT))))
    assert named, "expected install hints in the sources"
    unknown = sorted((e, p) for e, p in named if e not in EXTRAS)
    assert not unknown, f"extras named but not defined in pyproject: {unknown}"


def test_extras_cover_each_framework() -> None:
    assert {"haystack", "langchain", "llama-index", "all", "test"} <= EXTRAS


def test_missing_extra_message_is_quoted_and_chained() -> None:
    original = ImportError("No module named 'haystack'", name="haystack")
    error = missing_extra("The Haystack ranker", "haystack", original)
    assert 'pip install "crossrank[haystack]"' in str(error)
    assert error.name == "haystack"


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_each_leaf_package_is_typed(leaf: str) -> None:
    assert (LEAVES[leaf] / "py.typed").is_file()
    assert (LEAVES[leaf] / "__init__.py").is_file()


@pytest.mark.parametrize("level", NAMESPACE_LEVELS, ids=lambda p: p.name)
def test_shared_levels_are_namespace_packages(level: Path) -> None:
    assert level.is_dir()
    assert not (level / "__init__.py").exists(), f"{level} must stay a namespace package"


def test_core_never_imports_a_framework() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(haystack|langchain|llama_index)\b", re.M)
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "src" / "crossrank").rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []


def test_version_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "crossrank", "--version"], capture_output=True, text=True,
        check=True,
    )
    assert out.stdout.strip() == f"crossrank {crossrank.__version__}"


def test_wheel_and_sdist_carry_the_license_and_every_package_root(tmp_path: Path) -> None:
    import tarfile
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )
    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in wheel)
    for root in ("crossrank/", "haystack_integrations/", "langchain_crossrank/", "llama_index/"):
        assert any(n.startswith(root) for n in wheel), root
    with tarfile.open(next(tmp_path.glob("*.tar.gz"))) as sdist:
        names = sdist.getnames()
    assert any(n.endswith("/LICENSE") for n in names)
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    included = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert all((ROOT / path).exists() for path in included), included


def test_readme_links_work_on_the_package_index_too() -> None:
    """The README is the long description: relative links would break on the index."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not re.match(r"(https?://|#|mailto:)", t)]
    assert not relative, relative


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2  # Development: the main job, then the tests
    main_job, tests = commands
    test_part = tests.split('pip install -e ".[test]" && ', 1)[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == test_part
    assert "python -m pip install --quiet torch==2.13.0" in ci
    # Both install the CPU torch first, and the main job is a crossrank command whose flags
    # exist (parsed by the CLI's own parser) on the shared model and data.
    for command in commands:
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")
    job = main_job.split('pip install -e ".[all]" && ', 1)[1]
    assert job.startswith("crossrank eval ") and "../shared/models/" in job
    from crossrank.cli.command import build_parser

    args = build_parser().parse_args(job.split()[1:])
    assert args.command == "eval" and args.data.endswith("../shared/data/scifact")
