"""The commit-msg check (tools/check_commit_msg.py): subjects of at most 72 characters, a blank
line before the body, and what git strips itself left out of the count."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tools.check_commit_msg import MAX_SUBJECT, SCISSORS, main, problems

ROOT = Path(__file__).resolve().parents[2]


def test_a_subject_of_72_characters_passes_and_73_is_refused() -> None:
    assert problems("x" * MAX_SUBJECT + "\n") == []
    (problem,) = problems("x" * (MAX_SUBJECT + 1) + "\n")
    assert "73 characters, at most 72" in problem


def test_length_counts_characters_not_bytes() -> None:
    subject = ("Báo cáo xã được cộng lên huyện " * 3)[:MAX_SUBJECT]
    assert len(subject) == MAX_SUBJECT and len(subject.encode()) > MAX_SUBJECT
    assert problems(subject) == []


def test_the_body_is_separated_by_a_blank_line() -> None:
    assert problems("Roll up agencies\n\nThe detail, a line as long as it needs: " + "y" * 200) == []
    (problem,) = problems("Roll up agencies\nthe detail straight after\n")
    assert "second line must be blank" in problem


def test_both_problems_are_named_at_once() -> None:
    assert len(problems("z" * 100 + "\nno blank line\n")) == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", f"{SCISSORS}\nLong diff " + "x" * 99])
def test_an_empty_message_is_refused(text: str) -> None:
    assert problems(text) == ["the message is empty: write a subject line"]


def test_what_git_strips_is_not_checked() -> None:
    text = (
        "\n"
        "Count agencies once\n"
        "# Please enter the commit message for your changes. Lines starting with '#' will be ignored,\n"
        "\n"
        "Body.\n"
        f"{SCISSORS}\n"
        "diff --git a/a_file_with_a_name_long_enough_to_be_over_the_limit_on_its_own.py b/...\n"
    )
    assert problems(text) == []


def test_main_reads_the_file_git_passes_and_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("Count agencies once\n\nBody.\n", encoding="utf-8")
    bad.write_text("w" * 80 + "\n", encoding="utf-8")
    assert main([str(good)]) == 0
    assert capsys.readouterr().err == ""
    assert main([str(bad)]) == 1
    assert "commit message: the subject is 80 characters" in capsys.readouterr().err
    assert main([]) == 2


def test_git_refuses_a_commit_the_hook_refuses(tmp_path: Path) -> None:
    """The hook's contract with git: the message's path as the only argument, non-zero refuses."""
    repo, hooks = tmp_path / "repo", tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "commit-msg"
    hook.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m tools.check_commit_msg "$1"\n')
    hook.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False)

    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert git("config", "core.hooksPath", str(hooks)).returncode == 0
    refused = git("commit", "-q", "--allow-empty", "-m", "v" * 73)
    assert refused.returncode != 0
    assert "the subject is 73 characters" in refused.stderr
    assert git("commit", "-q", "--allow-empty", "-m", "Count agencies once").returncode == 0
    assert git("log", "--format=%s").stdout == "Count agencies once\n"
