"""Broken recipes and image references, as a user runs them: `ducc check`,
`ducc convert --strict`, `ducc convert-single-image` and `ducc download-manifest` all exit 2
with a located message, no traceback, nothing written to the repository or the state
directory. (Without --strict, `convert` converts the entries it can read: test_takeover_cli.)

Every command runs in a process of its own, forked from one that imported ducc once
(`tests.support.zygote`), so that the catalogue runs in seconds; a sample is run again with
`python -m ducc` to show that both give the same answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ducc import Run, ducc
from tests.support.zygote import Zygote

pytestmark = pytest.mark.integration

H64 = "a" * 64
HEAD = "version: 1\ncvmfs_repo: unpacked.test\ninput:\n"  # entries start on line 4
SECRET = "Pw7-hostile-recipes-0c1f"


def _entries(*images: str) -> str:
    return HEAD + "".join(f"  - '{image}'\n" for image in images)


def _bomb(depth: int = 12, width: int = 10) -> str:
    """A "billion laughs": `width ** depth` strings, were every alias expanded."""
    lines = ["version: 1", "cvmfs_repo: unpacked.test", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines.append(f"input: *l{depth - 1}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    """A recipe file's content (None: no file; a directory when `directory`) and the
    fragments its message must hold; `absent` must not appear anywhere in the output."""

    name: str
    content: str | bytes | None
    expect: tuple[str, ...]
    directory: bool = False
    absent: tuple[str, ...] = ()


CASES = [
    Case(
        "yaml_syntax", "version: 1\ncvmfs_repo: [unpacked.test\n", ("recipe.yaml:3: YAML syntax",)
    ),
    Case("tab_indent", HEAD + "\t- 'quay.io/a/b:1'\n", ("recipe.yaml:4: YAML syntax error",)),
    Case("top_level_list", "- version: 1\n", ("recipe.yaml:1: a recipe is a mapping",)),
    Case("top_level_scalar", "hello\n", ("recipe.yaml:1: a recipe is a mapping",)),
    Case("empty_file", "", ("recipe.yaml: the recipe is empty",)),
    Case("only_comments", "# nothing\n# here\n", ("recipe.yaml: the recipe is empty",)),
    Case("two_documents", _entries("quay.io/a/b:1") + "---\nversion: 1\n", ("YAML syntax",)),
    Case(
        "version_2",
        "version: 2\ncvmfs_repo: unpacked.test\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:1: version: unsupported version 2",),
    ),
    Case(
        "version_string",
        "version: 'one'\ncvmfs_repo: unpacked.test\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:1: version: expected the integer 1, got a string",),
    ),
    Case(
        "cvmfs_repo_missing",
        "version: 1\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:1: missing required key 'cvmfs_repo'",),
    ),
    Case(
        "cvmfs_repo_list",
        "version: 1\ncvmfs_repo: [a, b]\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:2: cvmfs_repo: expected a string, got a list",),
    ),
    Case(
        "cvmfs_repo_dotdot",
        "version: 1\ncvmfs_repo: unpacked.test/../../etc\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:2: cvmfs_repo:", "'..'"),
    ),
    Case(
        "cvmfs_repo_absolute",
        "version: 1\ncvmfs_repo: /cvmfs/unpacked.test\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:2: cvmfs_repo:", "is absolute"),
    ),
    Case(
        "cvmfs_repo_bad_chars",
        "version: 1\ncvmfs_repo: 'unpacked.test/a;rm -rf'\ninput: ['quay.io/a/b:1']\n",
        ("recipe.yaml:2: cvmfs_repo:", "bad characters"),
    ),
    Case(
        "input_missing",
        "version: 1\ncvmfs_repo: unpacked.test\n",
        ("recipe.yaml:1: missing required key 'input'",),
    ),
    Case("input_null", HEAD, ("recipe.yaml:3: input: expected a list, got null",)),
    Case("input_empty", HEAD[:-1] + " []\n", ("recipe.yaml:3: input: the list is empty",)),
    Case(
        "input_string",
        HEAD[:-1] + " 'quay.io/a/b:1'\n",
        ("recipe.yaml:3: input: expected a list, got a string",),
    ),
    Case(
        "input_wrong_types",
        HEAD + "  - 42\n  - {a: b}\n  - ''\n  - [x]\n",
        (
            "recipe.yaml:4: input[0]: expected a string, got an integer",
            "recipe.yaml:5: input[1]: expected a string, got a mapping",
            "recipe.yaml:6: input[2]: empty string",
            "recipe.yaml:7: input[3]: expected a string, got a list",
        ),
    ),
    Case(
        "uppercase_repository",
        _entries("quay.io/a/b:1", "quay.io/Stimela/casa:1"),
        ("recipe.yaml:5: input[1]:", "must be lowercase"),
    ),
    Case("bad_tag_chars", _entries("quay.io/a/b:v1+meta"), ("recipe.yaml:4: input[0]:", "bad tag")),
    Case(
        "tag_too_long",
        _entries("quay.io/a/b:" + "t" * 129),
        ("recipe.yaml:4: input[0]:", "tag is 129 characters"),
    ),
    Case(
        "digest_length",
        _entries("quay.io/a/b@sha256:abc"),
        ("recipe.yaml:4: input[0]:", "needs 64 hex characters"),
    ),
    Case(
        "digest_algorithm",
        _entries(f"quay.io/a/b@md5:{H64}"),
        ("recipe.yaml:4: input[0]:", "unsupported algorithm 'md5'"),
    ),
    Case("bad_port", _entries("quay.io:70000/a/b:1"), ("recipe.yaml:4: input[0]:", "bad port")),
    Case(
        "unknown_scheme",
        _entries("docker://docker.io/a/b:1"),
        ("recipe.yaml:4: input[0]:", "unsupported scheme 'docker'"),
    ),
    Case(
        "no_registry",
        _entries("library/centos:7"),
        ("recipe.yaml:4: input[0]:", "names no registry"),
    ),
    Case(
        "path_traversal_reference",
        _entries("quay.io/a/../../b:1"),
        ("recipe.yaml:4: input[0]:", "'..' is not allowed"),
    ),
    Case(
        "bad_globs",
        _entries("quay.io/a/b:1.[0-9", "quay.io/a/b:v1[z-a]"),
        ("recipe.yaml:4: input[0]:", "never closed", "recipe.yaml:5: input[1]:", "bad range"),
    ),
    Case(
        "credentials_in_input",
        _entries(f"https://alice:{SECRET}@quay.io/a/b:1", f"https://alice:{SECRET}/x@quay.io/a"),
        ("recipe.yaml:4: input[0]:", "carries credentials", "recipe.yaml:5: input[1]:"),
        absent=(SECRET, "alice"),
    ),
    Case(
        "not_utf8",
        (_entries("quay.io/a/b:1") + "  - 'quay.io/a/").encode() + b"\xff'\n",
        ("recipe.yaml:5: not UTF-8 (byte 0xff)",),
    ),
    Case("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ("not UTF-8",)),
    Case("missing_file", None, ("recipe.yaml: cannot read the recipe",)),
    Case("directory", None, ("recipe.yaml", "is a directory"), directory=True),
    Case("huge_file", HEAD + "  - 'quay.io/a/b:1'\n" * 300_000, ("recipe.yaml: larger than",)),
    Case("alias_bomb", _bomb(), ("recipe.yaml:13: input[0]: expected a string, got a list",)),
    Case("recursive_alias", HEAD[:-1] + " &a [*a]\n", ("recipe.yaml:3: input[0]: expected a str",)),
    Case(
        "duplicate_keys",
        _entries("quay.io/a/b:1") + "input:\n  - 'quay.io/a/c:1'\n",
        ("recipe.yaml:5: duplicate key 'input' (first at line 3)",),
    ),
    Case(
        "ignore_errors_type",
        _entries("quay.io/a/b:1") + "ignoreErrors: {a: b}\n",
        ("recipe.yaml:5: ignoreErrors: expected a list, got a mapping",),
    ),
    Case(
        "ignore_errors_bad_glob",
        _entries("quay.io/a/b:1") + "ignoreErrors:\n  - '[a'\n",
        ("recipe.yaml:6: ignoreErrors[0]:", "never closed"),
    ),
    Case(
        "output_format_unknown_variable",
        _entries("quay.io/a/b:1") + "output_format: 'x/$(nope)'\n",
        ("recipe.yaml:5: output_format: unknown variable $(nope)",),
    ),
    Case(
        "user_wrong_type",
        _entries("quay.io/a/b:1") + "user: [root]\n",
        ("recipe.yaml:5: user: expected a string, got a list",),
    ),
    Case(
        "unsafe_yaml_tags",
        "version: !!python/object/apply:os.system ['touch pwned']\ncvmfs_repo: !x unpacked.test\n"
        "input:\n  - !!binary aGVsbG8=\n  - !!int abc\n",
        (
            "recipe.yaml:1: version:",
            "recipe.yaml:2: cvmfs_repo: expected a string",
            "recipe.yaml:4: input[0]: expected a string, got a binary",
            "recipe.yaml:5: input[1]: expected a string",
        ),
    ),
    Case(
        "many_problems_sorted",
        "version: 3\ncvmfs_repo: ../up\ninput:\n  - quay.io/a/b:1\n  - quay.io/B/c\n  - 5\n",
        ("recipe.yaml:1: version", "recipe.yaml:2: cvmfs_repo", "recipe.yaml:5: input[1]"),
    ),
]
# (reference, fragment): for convert-single-image and download-manifest, no recipe.
REFERENCES = [
    ("", "empty image reference"),
    ("quay.io/Stimela/casa:1", "must be lowercase"),
    ("quay.io/a/b:v1+meta", "bad tag"),
    ("quay.io/a/b:" + "t" * 129, "tag is 129 characters"),
    ("quay.io/a/b@sha256:abc", "needs 64 hex characters"),
    (f"quay.io/a/b@md5:{H64}", "unsupported algorithm"),
    (f"quay.io/a/b@sha512:{H64}", "needs 128 hex characters"),
    ("quay.io:0/a/b:1", "bad port"),
    ("quay.io:http/a/b:1", "bad port"),
    ("ftp://quay.io/a/b:1", "unsupported scheme 'ftp'"),
    ("quay.io/a/../b:1", "'..' is not allowed"),
    ("quay.io/a//b:1", "empty path component"),
    ("quay.io/a b:1", "whitespace"),
    ("quay.io/a/b:1.[0-9", "never closed"),
    ("centos:7", "has no repository after the registry host"),
    ("centos", "names no registry"),
    ("quay.io", "has no repository"),
    ("quay..io/a/b", "not a valid host name"),
    ("http://[zz::1]:5000/a", "bad IPv6"),
    (f"https://alice:{SECRET}@quay.io/a/b:1", "carries credentials"),
    (f"alice:{SECRET} x@quay.io/a/b:1", "carries credentials"),
]


@dataclass(frozen=True)
class Outcome:
    runs: dict[str, Run]
    seconds: dict[str, float]
    written: list[str]  # anything found under the root and state directories afterwards


def _run_case(zygote: Zygote, case: Case, workdir: Path) -> Outcome:
    workdir.mkdir()
    recipe = workdir / "recipe.yaml"
    if case.directory:
        recipe.mkdir()
    elif isinstance(case.content, bytes):
        recipe.write_bytes(case.content)
    elif case.content is not None:
        recipe.write_text(case.content)
    root, state = workdir / "root", workdir / "state"
    commands: dict[str, list[str | Path]] = {
        "check": ["check", "recipe.yaml"],
        "convert": [
            "convert",
            "--strict",
            "recipe.yaml",
            "--publisher",
            "dir",
            "--root",
            root,
            "--state-dir",
            state,
        ],
    }
    runs, seconds = {}, {}
    for name, argv in commands.items():
        runs[name], seconds[name] = zygote.run(*argv, cwd=workdir)
    return Outcome(runs, seconds, _written(root, state))


def _run_reference(zygote: Zygote, reference: str, workdir: Path) -> Outcome:
    workdir.mkdir()
    root, state = workdir / "root", workdir / "state"
    publish = ["--publisher", "dir", "--root", str(root), "--state-dir", str(state)]
    runs = {
        "convert-single-image": zygote.run(
            "convert-single-image", reference, "unpacked.test", *publish, cwd=workdir
        )[0],
        "download-manifest": zygote.run("download-manifest", reference, cwd=workdir)[0],
    }
    return Outcome(runs, {}, _written(root, state))


def _written(*directories: Path) -> list[str]:
    return [str(p) for d in directories if d.exists() for p in [d, *d.rglob("*")]]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case of the catalogue, run once."""
    base = tmp_path_factory.mktemp("hostile-recipes")
    found: dict[str, Outcome] = {}
    with Zygote(base) as zygote:
        for case in CASES:
            found[case.name] = _run_case(zygote, case, base / case.name)
        for index, (reference, _) in enumerate(REFERENCES):
            found[f"ref{index}"] = _run_reference(zygote, reference, base / f"ref{index}")
    return found


def _assert_refused(run: Run, expect: tuple[str, ...], absent: tuple[str, ...] = ()) -> None:
    output = run.stdout + run.stderr
    assert run.code == 2, output
    assert "Traceback" not in output
    assert "unexpected" not in output, output  # the CLI's words for a bug it caught
    for fragment in expect:
        assert fragment in run.stderr, run.stderr
    for secret in absent:
        assert secret not in output


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len(REFERENCES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("command", ["check", "convert"])
def test_broken_recipe_is_refused_with_its_location(
    outcomes: dict[str, Outcome], case: Case, command: str
) -> None:
    outcome = outcomes[case.name]
    _assert_refused(outcome.runs[command], case.expect, case.absent)
    assert outcome.written == []


def test_alias_bomb_is_refused_quickly(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["alias_bomb"]
    # Parsing takes milliseconds; an expanded bomb (10 ** 12 strings) would never end.
    assert max(outcome.seconds.values()) < 5, outcome.seconds


@pytest.mark.parametrize(
    ("index", "fragment"),
    [(i, fragment) for i, (_, fragment) in enumerate(REFERENCES)],
    ids=[f"ref{i}" for i in range(len(REFERENCES))],
)
@pytest.mark.parametrize("command", ["convert-single-image", "download-manifest"])
def test_bad_reference_is_refused_on_the_command_line(
    outcomes: dict[str, Outcome], index: int, fragment: str, command: str
) -> None:
    outcome = outcomes[f"ref{index}"]
    _assert_refused(outcome.runs[command], ("error:", fragment), (SECRET,))
    assert outcome.written == []


def test_several_files_report_every_problem_and_convert_nothing(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(_entries("quay.io/a/b:1"))
    (tmp_path / "a.yaml").write_text(_entries("quay.io/a/b:1", "quay.io/A/b:1"))
    (tmp_path / "b.yaml").write_text("version: 2\ncvmfs_repo: unpacked.test\ninput: [x]\n")
    (tmp_path / "c.yaml").write_bytes(b"\x00\xff\xfe")
    names = ["good.yaml", "a.yaml", "b.yaml", "c.yaml"]
    check = ducc("check", *names, cwd=tmp_path)
    _assert_refused(
        check,
        (
            "a.yaml:5: input[1]:",
            "b.yaml:1: version: unsupported version 2",
            "b.yaml:3: input[0]:",
            "c.yaml:1: not UTF-8",
        ),
    )
    assert "good.yaml" not in check.stderr
    convert = ducc(
        "convert",
        "--strict",
        *names,
        "--publisher",
        "dir",
        "--root",
        tmp_path / "root",
        "--state-dir",
        tmp_path / "state",
        cwd=tmp_path,
    )
    _assert_refused(convert, ("4 problems in the recipe",))
    assert not (tmp_path / "root").exists()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("name", ["tab_indent", "credentials_in_input", "alias_bomb", "directory"])
def test_a_plain_process_answers_as_the_forked_one(
    outcomes: dict[str, Outcome], tmp_path: Path, name: str
) -> None:
    case = next(c for c in CASES if c.name == name)
    workdir = tmp_path / "case"
    workdir.mkdir()
    recipe = workdir / "recipe.yaml"
    if case.directory:
        recipe.mkdir()
    elif isinstance(case.content, str):
        recipe.write_text(case.content)
    started = time.monotonic()
    run = ducc("check", "recipe.yaml", cwd=workdir, timeout=60)
    assert time.monotonic() - started < 30
    assert run == outcomes[name].runs["check"]
