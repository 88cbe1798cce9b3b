"""`edge-rollout`'s top level: commands imported only when they run, help without importing any."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest

from edge_rollout.cli import main


@pytest.fixture
def imported(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The modules `main` asks importlib for (the real import still runs)."""
    calls: list[str] = []
    real = importlib.import_module

    def recording(name: str, package: str | None = None) -> object:
        calls.append(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", recording)
    return calls


def test_help_lists_every_command_without_importing_any(imported: list[str]) -> None:
    text = main.build_parser().format_help()
    for name, command in main.COMMANDS.items():
        assert f"{name}  " in text
        assert command.help.split()[0] in text
    assert imported == []


def test_parsing_a_command_imports_only_its_module(imported: list[str], tmp_path: Path) -> None:
    args = main.build_parser().parse_args(["keygen", str(tmp_path / "k")])
    assert imported == ["edge_rollout.cli.keygen"]
    assert args.command == "keygen"
    assert args.key == tmp_path / "k"
    assert callable(args.handler)


def test_an_unknown_command_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main.build_parser().parse_args(["bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err
    assert "'operator', 'publish', 'keygen', 'store', 'diff', 'plan'" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["publish", "m.onnx"], "publish", id="first-word"),
        pytest.param(["-h"], None, id="help-only"),
        pytest.param([], None, id="nothing"),
        pytest.param(["bogus", "keygen"], None, id="unknown-first-word"),
        pytest.param(["store", "verify", "s"], "store", id="nested"),
    ],
)
def test_chosen_command_is_the_first_word(argv: list[str], expected: str | None) -> None:
    assert main.chosen_command(argv) == expected


@pytest.mark.parametrize("name", sorted(main.COMMANDS))
def test_listed_help_is_the_modules_own(name: str) -> None:
    """The table's help (shown by `--help` without importing) says what the module says."""
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(main.COMMANDS[name].module).register(subparsers)
    helps = {action.dest: action.help for action in subparsers._choices_actions}
    assert helps == {name: main.COMMANDS[name].help}


def test_a_missing_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "needs_absent_package.py").write_text("import edge_rollout_absent_package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    command = main.Command("needs_absent_package", "needs a package", "publish")
    monkeypatch.setitem(main.COMMANDS, "ghost", command)
    with pytest.raises(main.MissingExtraError) as error:
        main.build_parser().parse_args(["ghost"])
    assert str(error.value) == (
        "edge-rollout ghost: needs the Python package 'edge_rollout_absent_package', which the "
        "[publish] extra installs: pip install 'edge-rollout[publish]'"
    )
    sys.modules.pop("needs_absent_package", None)


def test_a_missing_module_of_the_project_itself_is_a_bug_not_an_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = main.Command("edge_rollout.cli.no_such_module", "gone", "publish")
    monkeypatch.setitem(main.COMMANDS, "ghost", command)
    with pytest.raises(ModuleNotFoundError, match=r"edge_rollout\.cli\.no_such_module"):
        main.build_parser().parse_args(["ghost"])
