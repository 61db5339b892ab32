"""Issue 16, defect 6: what the user approved is what gets written. A file tool's target re-pointed
(a symlink swapped) or its content changed while the question was up is not written: the call fails
with a result that tells the model so, and calling again asks the user again, showing it as it is now."""

from __future__ import annotations

import json
import os

import pytest
from gridchat.chat.events import ToolCall
from gridchat.chat.toolbox import ApprovalPolicy, Decision, Toolbox
from gridchat.chat.turn import NullSink
from gridchat.tools import Workspace


class Quiet(NullSink):
    def tool_call(self, call, preview): pass
    def tool_result(self, call, outcome): pass
    def notice(self, text): pass


class YesAfter:
    """A user who says y — after ``meanwhile`` has happened while the question was up."""

    def __init__(self, meanwhile=lambda: None):
        self.meanwhile = meanwhile
        self.previews = []

    def ask(self, call, preview):
        self.previews.append(preview)
        self.meanwhile()
        self.meanwhile = lambda: None
        return Decision(True)


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("bravo\n")
    (root / "link.txt").symlink_to("a.txt")
    return root


def call(root, approver, name, **args):
    box = Toolbox(Workspace(root), ApprovalPolicy())
    return box.handle(ToolCall("call_1", name, json.dumps(args)), approver, Quiet())


def repoint(root):
    os.remove(root / "link.txt")
    (root / "link.txt").symlink_to("b.txt")


CALLS = {"write_file": {"path": "link.txt", "content": "written\n"},
         "edit_file": {"path": "link.txt", "old_string": "a", "new_string": "A", "replace_all": True}}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_link_repointed_while_asking_writes_nothing(ws, name):
    user = YesAfter(lambda: repoint(ws))
    outcome = call(ws, user, name, **CALLS[name])
    assert "a.txt" in user.previews[0].body  # the diff the user saw was a.txt's
    assert (ws / "b.txt").read_text() == "bravo\n" and (ws / "a.txt").read_text() == "alpha\n"
    assert outcome.status == "error" and "changed while" in outcome.content and "b.txt" in outcome.content
    # the model calls again: the user is asked again, now about b.txt, and that is what is written
    again = YesAfter()
    outcome = call(ws, again, name, **CALLS[name])
    assert outcome.status == "ran" and "b.txt" in again.previews[0].body
    assert (ws / "b.txt").read_text() in ("written\n", "bravo\n".replace("a", "A"))
    assert (ws / "a.txt").read_text() == "alpha\n"


def test_an_overwrite_of_a_file_edited_meanwhile_is_refused(ws):
    outcome = call(ws, YesAfter(lambda: (ws / "a.txt").write_text("someone else's work\n")),
                   "write_file", path="a.txt", content="mine\n")
    assert outcome.status == "error" and "changed while" in outcome.content
    assert (ws / "a.txt").read_text() == "someone else's work\n"


def test_a_file_created_meanwhile_is_not_clobbered(ws):
    outcome = call(ws, YesAfter(lambda: (ws / "new.txt").write_text("someone else's\n")),
                   "write_file", path="new.txt", content="mine\n")
    assert outcome.status == "error" and "changed while" in outcome.content
    assert (ws / "new.txt").read_text() == "someone else's\n"


def test_an_edit_whose_file_changed_meanwhile_is_refused(ws):
    outcome = call(ws, YesAfter(lambda: (ws / "a.txt").write_text("alpha\nand more\n")),
                   "edit_file", path="a.txt", old_string="alpha", new_string="omega")
    assert outcome.status == "error" and "changed while" in outcome.content
    assert (ws / "a.txt").read_text() == "alpha\nand more\n"


def test_unchanged_it_is_written(ws):
    outcome = call(ws, YesAfter(), "write_file", path="link.txt", content="written\n")
    assert outcome.status == "ran" and (ws / "a.txt").read_text() == "written\n" and (ws / "link.txt").is_symlink()
