"""``lanp COMMAND --help`` reads as plain text: no reST markup, paragraphs wrapped to the terminal."""

from __future__ import annotations

import pytest

from lanp_vad.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_text_within_the_terminal(command: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as raised:
        main([command, "--help"])
    assert raised.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    description = text.split("\n\n", 1)[1].split("positional arguments:", 1)[0]
    assert all(len(line) <= 80 for line in description.splitlines()), description
