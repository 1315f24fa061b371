"""confine(): the one rule that keeps a path inside a root, on real files and symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_orchestrate.errors import PathOutsideRootError, ValidationError
from jupyter_orchestrate.workspace import confine


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "job").mkdir(parents=True)
    (tmp_path / "root" / "job" / "a.ipynb").write_text("{}", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("secret", encoding="utf-8")
    return tmp_path / "root"


def refused(path: str | Path, root: Path) -> str:
    with pytest.raises(PathOutsideRootError) as info:
        confine(path, root, what="notebook", within="the job folder")
    assert isinstance(info.value, ValidationError), "a usage error: 403 in the API, exit 2 in the CLI"
    return str(info.value)


def test_relative_and_absolute_paths_inside(root: Path) -> None:
    assert confine("job/a.ipynb", root, what="notebook") == (root / "job" / "a.ipynb").resolve()
    assert confine(root / "job" / "a.ipynb", root, what="notebook") == (root / "job" / "a.ipynb").resolve()
    assert confine("job/../job/./a.ipynb", root, what="notebook") == (root / "job" / "a.ipynb").resolve()
    assert confine(".", root, what="folder") == root.resolve(), "the root itself is inside"


def test_dot_dot_and_absolute_paths_outside(root: Path) -> None:
    assert refused("../outside.txt", root) == "notebook '../outside.txt' leads outside the job folder"
    assert (
        refused("job/../../outside.txt", root)
        == "notebook 'job/../../outside.txt' leads outside the job folder"
    )
    assert refused("/etc/passwd", root) == "notebook '/etc/passwd' leads outside the job folder"
    assert refused(root.parent / "root-sibling", root), (
        "a path sharing the root's name as a prefix is outside"
    )


def test_symlinks_are_followed(root: Path) -> None:
    (root / "job" / "out.txt").symlink_to(root.parent / "outside.txt")
    (root / "job" / "up").symlink_to(root.parent, target_is_directory=True)
    (root / "job" / "in.ipynb").symlink_to(root / "job" / "a.ipynb")
    message = refused("job/out.txt", root)
    assert message == "notebook 'job/out.txt' leads outside the job folder"
    assert "outside.txt" not in message, "the message never names where the link points"
    assert refused("job/up/outside.txt", root)
    assert confine("job/in.ipynb", root, what="notebook") == (root / "job" / "a.ipynb").resolve()


def test_a_root_reached_through_a_symlink(root: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    assert confine("job/a.ipynb", tmp_path / "alias", what="notebook") == (root / "job" / "a.ipynb").resolve()


def test_nonexistent_paths(root: Path) -> None:
    assert (
        confine("job/missing/b.ipynb", root, what="notebook")
        == (root / "job" / "missing" / "b.ipynb").resolve()
    )
    assert refused("missing/../../nowhere", root)
    (root / "dangling").symlink_to(root.parent / "not-there")
    assert refused("dangling", root), "a dangling link out is refused even though its target does not exist"
    with pytest.raises(ValidationError) as info:
        confine("a\x00b", root, what="job path")
    assert not isinstance(info.value, PathOutsideRootError) and "NUL" in str(info.value)
