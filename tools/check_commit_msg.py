"""Checks a commit message: a subject of at most 72 characters, then a blank line before any body.

    python -m tools.check_commit_msg .git/COMMIT_EDITMSG

The commit-msg hook of .pre-commit-config.yaml (git passes the message's file). Lines git strips
itself are skipped: comments (``#``) and everything below the scissors line of ``--verbose``.
Length counts characters, not bytes, so a Vietnamese subject is measured as it reads.
Exit status 1 and one line per problem on stderr when the message is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAX_SUBJECT = 72
SCISSORS = "# ------------------------ >8 ------------------------"


def message_lines(text: str) -> list[str]:
    """The lines git keeps: no comment lines, nothing from the scissors line on, no leading blanks."""
    lines: list[str] = []
    for line in text.splitlines():
        if line == SCISSORS:
            break
        if line.startswith("#"):
            continue
        if not lines and not line.strip():
            continue
        lines.append(line.rstrip())
    return lines


def problems(text: str) -> list[str]:
    """What is wrong with the message ``text``; empty when it may be committed."""
    lines = message_lines(text)
    if not lines:
        return ["the message is empty: write a subject line"]
    found: list[str] = []
    subject = lines[0]
    if len(subject) > MAX_SUBJECT:
        found.append(
            f"the subject is {len(subject)} characters, at most {MAX_SUBJECT}: "
            "say what the commit does in the subject, the detail in the body"
        )
    if len(lines) > 1 and lines[1]:
        found.append("the second line must be blank: it separates the subject from the body")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tools.check_commit_msg MESSAGE_FILE", file=sys.stderr)
        return 2
    found = problems(Path(args[0]).read_text(encoding="utf-8"))
    for problem in found:
        print(f"commit message: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
