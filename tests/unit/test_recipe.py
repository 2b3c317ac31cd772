"""Recipe validation: every malformed recipe gets its located message; good ones load."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.errors import RecipeInvalid
from ducc.oci.reference import parse_reference
from ducc.recipe.model import CvmfsRepo, format_output
from ducc.recipe.options import (
    RecipeOptions,
    ignore_errors_from_environment,
    read_ignore_errors_file,
)
from ducc.recipe.parser import load_wishlist

DATA = Path(__file__).parent.parent / "data"
H64 = "c" * 64

GOOD = """\
version: 1
user: cvmfsunpacker
cvmfs_repo: 'unpacked.cern.ch'
output_format: 'https://gitlab-registry.cern.ch/unpacked/sync/$(image)'
input:
  - 'https://registry.hub.docker.com/library/centos:centos7'
  - 'https://registry.hub.docker.com/atlas/analysisbase:21.2.1*'
ignoreErrors:
  - 'https://registry.hub.docker.com/someuser/*'
"""

# (recipe text, expected fragment with location, as printed)
BROKEN = [
    (
        "version: 2\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:1: version: unsupported version 2",
    ),
    (
        "version: '1'\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:1: version: expected the integer 1, got a string",
    ),
    (
        "version: true\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:1: version: expected the integer 1, got a boolean",
    ),
    ("version: 1\ninput: ['quay.io/a/b:1']\n", "r.yaml:1: missing required key 'cvmfs_repo'"),
    ("version: 1\ncvmfs_repo: r.cern.ch\n", "r.yaml:1: missing required key 'input'"),
    ("version: 1\ncvmfs_repo: r.cern.ch\ninput: []\n", "r.yaml:3: input: the list is empty"),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput: 'quay.io/a/b:1'\n",
        "r.yaml:3: input: expected a list, got a string",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - quay.io/a/b:1\n  - 42\n",
        "r.yaml:5: input[1]: expected a string, got an integer",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - {a: b}\n",
        "r.yaml:4: input[0]: expected a string, got a mapping",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  -\n",
        "r.yaml:4: input[0]: expected a string, got null",
    ),
    ("version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - ''\n", "r.yaml:4: input[0]: empty string"),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - quay.io/a/b:1\n  - quay.io/A/b:1\n",
        "r.yaml:5: input[1]: image reference 'quay.io/A/b:1': repository 'A/b' must be lowercase",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - quay.io/a/b:[x\n",
        "r.yaml:4: input[0]: image reference 'quay.io/a/b:[x': bad wildcard tag",
    ),
    (
        "version: 1\ncvmfs_repo: ../x\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:2: cvmfs_repo: '../x' has an empty, '.' or '..' path component",
    ),
    (
        "version: 1\ncvmfs_repo: /cvmfs/r.cern.ch\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:2: cvmfs_repo: '/cvmfs/r.cern.ch' is absolute",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch/sub/../..\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:2: cvmfs_repo: 'r.cern.ch/sub/../..' has an empty",
    ),
    (
        "version: 1\ncvmfs_repo: 'r cern'\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:2: cvmfs_repo: 'r cern': bad characters",
    ),
    (
        "version: 1\ncvmfs_repo: [r.cern.ch]\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:2: cvmfs_repo: expected a string, got a list",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\nuser: 7\n",
        "r.yaml:4: user: expected a string, got an integer",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'x/$(bogus)'\n"
        "input: ['quay.io/a/b:1']\n",
        "r.yaml:3: output_format: unknown variable $(bogus)",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\nignoreErrors: ['x[']\n",
        "r.yaml:4: ignoreErrors[0]: pattern 'x[': '[' at position 2 is never closed",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput: ['quay.io/a/b:1']\nignoreErrors: x\n",
        "r.yaml:4: ignoreErrors: expected a list, got a string",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ncvmfs_repo: s.cern.ch\ninput: ['quay.io/a/b:1']\n",
        "r.yaml:3: duplicate key 'cvmfs_repo' (first at line 2)",
    ),
    ("- version: 1\n", "r.yaml:1: a recipe is a mapping of keys, got a list"),
    ("just a string\n", "r.yaml:1: a recipe is a mapping of keys, got a string"),
    ("", "r.yaml: the recipe is empty"),
    ("version: 1\ninput: [unclosed\n", "r.yaml:3: YAML syntax error"),
    ("version: 1\n  cvmfs_repo: x\n", "r.yaml:2: YAML syntax error"),
    ("version: 1\n---\nversion: 1\n", "r.yaml:2: YAML syntax error"),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 'https://u:hunter2@quay.io/a/b:1'\n",
        "r.yaml:4: input[0]: image reference 'https://***@quay.io/a/b:1' carries credentials",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 'docker://docker.io/x:1'\n",
        "r.yaml:4: input[0]: image reference 'docker://docker.io/x:1': unsupported scheme",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 'quay.io/a/b:'\n",
        "r.yaml:4: input[0]: image reference 'quay.io/a/b:' has an empty tag",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 'quay.io/a/b@sha256:1234'\n",
        "r.yaml:4: input[0]: image reference 'quay.io/a/b@sha256:1234': digest",
    ),
    (
        "{version: 1, ? [a]: b, cvmfs_repo: r, input: [quay.io/a/b:1]}\n",
        "r.yaml:1: keys must be strings, got a list",
    ),
    (
        "version: 1\ncvmfs_repo: !custom r.cern.ch\ninput: [quay.io/a/b:1]\n",
        "r.yaml:2: cvmfs_repo: expected a string, got a value that cannot be read as !custom",
    ),
    (
        "version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - quay.io/a/b:1\n  - !!int abc\n",
        "r.yaml:5: input[1]: expected a string, got a value that cannot be read as",
    ),
    (
        "version: !!python/name:os.system ''\ncvmfs_repo: r.cern.ch\ninput: [quay.io/a/b:1]\n",
        "r.yaml:1: version: expected the integer 1, got a value that cannot be read",
    ),
    (
        f"version: {'9' * 5000}\ncvmfs_repo: r.cern.ch\ninput: [quay.io/a/b:1]\n",
        "r.yaml:1: version: expected the integer 1, got a value that cannot be read",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), BROKEN)
def test_broken_recipe_reports_located_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text(text)
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist(["r.yaml"])
    assert any(fragment in problem for problem in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text(
        "version: 3\ncvmfs_repo: ../up\ninput:\n  - quay.io/a/b:1\n  - quay.io/B/c\n  - 5\n"
    )
    Path("s.yaml").write_text("version: 1\ncvmfs_repo: s\ninput: []\n")
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist(["r.yaml", "s.yaml"])
    problems = info.value.problems
    assert [p.split(":")[0:2] for p in problems] == [
        ["r.yaml", "1"],
        ["r.yaml", "2"],
        ["r.yaml", "5"],
        ["r.yaml", "6"],
        ["s.yaml", "3"],
    ]


def test_not_utf8_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_bytes(b"version: 1\ncvmfs_repo: r\ninput:\n  - 'quay.io/\xff:1'\n")
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist(["r.yaml"])
    assert info.value.problems == ["r.yaml:4: not UTF-8 (byte 0xff)"]


def test_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist([str(missing)])
    assert info.value.problems == [f"{missing}: cannot read the recipe: No such file or directory"]


def test_directory_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(RecipeInvalid, match="cannot read the recipe"):
        load_wishlist([str(tmp_path)])


def test_good_recipe_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD)
    wishlist = load_wishlist([str(path)])
    assert wishlist.warnings == []
    (recipe,) = wishlist.recipes
    assert str(recipe.cvmfs_repo) == "unpacked.cern.ch"
    assert recipe.user == "cvmfsunpacker"
    first, second = recipe.wishes
    assert first.location == f"{path}:6: input[0]"
    assert first.reference.simple_name == "registry.hub.docker.com/library/centos:centos7"
    assert second.reference.is_wildcard
    assert not first.ignore_errors


def test_ignore_errors_globs_do_not_cross_slashes(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\ncvmfs_repo: r\ninput:\n"
        "  - 'https://registry.hub.docker.com/someuser/img:1'\n"
        "  - 'https://registry.hub.docker.com/someuser/deeper/img:1'\n"
        "ignoreErrors: ['https://registry.hub.docker.com/someuser/*']\n"
    )
    direct, deeper = load_wishlist([str(path)]).wishes
    assert direct.ignore_errors
    assert not deeper.ignore_errors


def test_subdir_repo(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\ncvmfs_repo: unpacked.cern.ch/sub/dir\ninput: [quay.io/a/b:1]\n")
    repo = load_wishlist([str(path)]).recipes[0].cvmfs_repo
    assert (repo.name, repo.subdir) == ("unpacked.cern.ch", "sub/dir")


def test_unknown_keys_and_latest_warn(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\ncvmfs_repo: r\ninput: [quay.io/a/b]\nignore_errors: []\nextra: 1\n"
    )
    warnings = load_wishlist([str(path)]).warnings
    assert warnings == [
        f"{path}:4: unknown key 'ignore_errors' ignored (did you mean 'ignoreErrors'?)",
        f"{path}:5: unknown key 'extra' ignored",
        f"{path}:3: input[0]: 'quay.io/a/b' has no tag or digest; using 'latest'",
    ]


def test_duplicates_are_merged_across_spellings_and_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "version: 1\ncvmfs_repo: r\ninput:\n  - docker.io/centos:7\n  - quay.io/x/y:1\n"
        "  - https://docker.io/library/centos:7\n"
    )
    (tmp_path / "b.yaml").write_text("version: 1\ncvmfs_repo: r\ninput: ['quay.io/x/y:1']\n")
    (tmp_path / "c.yaml").write_text("version: 1\ncvmfs_repo: other\ninput: ['quay.io/x/y:1']\n")
    wishlist = load_wishlist([str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml")])
    assert len(wishlist.wishes) == 3
    assert len(wishlist.warnings) == 2
    assert "duplicate of" in wishlist.warnings[0]


def test_real_wishlist_checks_clean_with_its_duplicate_reported() -> None:
    wishlist = load_wishlist([str(DATA / "images-unpacked.cern.ch.yaml")])
    assert len(wishlist.wishes) == 46
    assert sum(w.reference.is_wildcard for w in wishlist.wishes) == 1
    (warning,) = wishlist.warnings
    assert "input[16]: duplicate of" in warning
    assert "stimela/pybdsf:1.6.6" in warning


def test_output_format_variables() -> None:
    ref = parse_reference(f"http://127.0.0.1:5000/a/b:v1@sha256:{H64}")
    template = "$(scheme)|$(registry)|$(repository)|$(tag)|$(digest)|$(reference)|$(image)"
    assert format_output(template, ref) == (
        f"http|127.0.0.1:5000|a/b|v1|sha256:{H64}|:v1@sha256:{H64}|a/b:v1@sha256:{H64}"
    )


def test_output_name_per_expanded_tag(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD)
    wildcard = load_wishlist([str(path)]).wishes[1]
    concrete = wildcard.reference.with_tag("21.2.10")
    assert wildcard.output_name(concrete) == (
        "https://gitlab-registry.cern.ch/unpacked/sync/atlas/analysisbase:21.2.10"
    )


# --- read entry by entry, as `convert` and `loop` read recipes (DUCC converted the rest) ----

LENIENT = RecipeOptions(strict=False)
DUCC_STYLE = (
    "cvmfs_repo: unpacked.test\n"
    "input:\n"
    "  - 'quay.io/team/app:1'\n"
    "  - 'quay.io/Stimela/casa:1'\n"
    "  - 'quay.io/team/app:1.1+'\n"
    "  - 42\n"
    "  - 'quay.io/team/app:v.*-cuda'\n"
)


def test_refused_entries_fail_alone_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(DUCC_STYLE)
    wishlist = load_wishlist([str(path)], LENIENT)
    assert [w.input for w in wishlist.wishes] == ["quay.io/team/app:1", "quay.io/team/app:v.*-cuda"]
    refused = {r.location: r for r in wishlist.refused}
    assert list(refused) == [f"{path}:4: input[1]", f"{path}:5: input[2]", f"{path}:6: input[3]"]
    assert "must be lowercase" in refused[f"{path}:4: input[1]"].problem
    assert refused[f"{path}:5: input[2]"].problem.startswith(f"{path}:5: input[2]: ")
    assert "expected a string, got an integer" in refused[f"{path}:6: input[3]"].problem
    assert str(refused[f"{path}:4: input[1]"].cvmfs_repo) == "unpacked.test"
    assert f"{path}:1: no 'version' key: read as version 1" in wishlist.warnings[0]
    (regex,) = [w for w in wishlist.warnings if "input[4]" in w]
    assert "read as DUCC read it" in regex
    assert "'v?*-cuda' matches the same tags" in regex


def test_read_strictly_the_same_recipe_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(DUCC_STYLE)
    with pytest.raises(RecipeInvalid) as info:
        load_wishlist([str(path)])
    assert len(info.value.problems) == 3


def test_ignore_errors_covers_a_refused_entry(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(DUCC_STYLE + "ignoreErrors:\n  - 'quay.io/Stimela/*'\n")
    refused = load_wishlist([str(path)], LENIENT).refused
    assert [r.ignore_errors for r in refused] == [True, False, False]


def test_ducc_ignore_errors_file_adds_to_every_recipe(tmp_path: Path) -> None:
    extra = tmp_path / "ignore.yaml"
    extra.write_text("ignoreErrors:\n  - 'quay.io/team/*'\n")
    patterns = ignore_errors_from_environment({"DUCC_IGNORE_ERRORS_FILE": str(extra)})
    path = tmp_path / "r.yaml"
    path.write_text(DUCC_STYLE)
    options = RecipeOptions(strict=False, extra_ignore_errors=patterns)
    wishlist = load_wishlist([str(path)], options)
    assert all(w.ignore_errors for w in wishlist.wishes)
    assert ignore_errors_from_environment({}) == ()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "cannot read it"), ("ignoreErrors: {a: b}\n", "must be a list"), ("[", "not valid")],
)
def test_a_bad_ignore_errors_file_is_refused_naming_the_variable(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    extra = tmp_path / "ignore.yaml"
    if content is not None:
        extra.write_text(content)
    with pytest.raises(RecipeInvalid) as info:
        read_ignore_errors_file(extra)
    (problem,) = info.value.problems
    assert "DUCC_IGNORE_ERRORS_FILE" in problem
    assert fragment in problem


def test_a_given_repository_replaces_cvmfs_repo_as_for_prune_images(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("input: ['quay.io/team/app:1']\n")  # DUCC's prune-images read input: only
    options = RecipeOptions(strict=False, repository=CvmfsRepo("unpacked.test"))
    (wish,) = load_wishlist([str(path)], options).wishes
    assert str(wish.cvmfs_repo) == "unpacked.test"


def test_output_format_with_an_unknown_variable_is_kept_as_written(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD.replace("$(image)", "$(image)-$(nope)"))
    wishlist = load_wishlist([str(path)], LENIENT)
    assert any(
        "unknown variable $(nope)" in w and "kept as written" in w for w in wishlist.warnings
    )
    name = wishlist.wishes[0].output_name()
    assert name is not None
    assert name.endswith("-$(nope)")
