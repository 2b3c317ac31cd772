"""Recipes (wishlists), DUCC's YAML format v1, validated as a whole before any work.

Every problem is collected with its location (`recipe.yaml:9: input[3]: ...`) and raised
together as `RecipeInvalid`; warnings (unknown keys, implicit `latest`, duplicates, a missing
`version`, DUCC's regex wildcards) are kept on the result. Read entry by entry
(`RecipeOptions.strict` off, as `convert` and `loop` read them), a refused `input` entry is
kept as a `RefusedWish` and the others are converted. Parsing goes through YAML nodes so that
every entry knows its line.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from ducc.errors import BadPattern, BadReference, RecipeInvalid
from ducc.oci.glob import Glob, compile_glob
from ducc.oci.reference import (
    Reference,
    TagPattern,
    ducc_regex_warning,
    parse_reference,
    redacted_reference,
)
from ducc.recipe.model import (
    OUTPUT_VARIABLES,
    VARIABLE,
    CvmfsRepo,
    Recipe,
    RefusedWish,
    Wish,
    Wishlist,
    cvmfs_repo_problem,
)
from ducc.recipe.nodes import node_kind, node_source, node_value
from ducc.recipe.options import RecipeOptions
from ducc.recipe.public_paths import public_path_problems

MAX_RECIPE_BYTES = 4 * 1024 * 1024
KNOWN_KEYS = ("version", "user", "cvmfs_repo", "output_format", "input", "ignoreErrors")


def load_wishlist(paths: list[str], options: RecipeOptions | None = None) -> Wishlist:
    """Parse and validate every recipe; raise `RecipeInvalid` listing every problem."""
    options = options or RecipeOptions()
    problems: list[str] = []
    wishlist = Wishlist()
    for path in paths:
        parser = _RecipeParser(path, wishlist.warnings, options)
        recipe = parser.parse()
        problems.extend(line for _, line in sorted(parser.own_problems, key=lambda p: p[0]))
        if recipe is not None:
            wishlist.recipes.append(recipe)
            wishlist.refused += parser.refused_wishes(recipe)
    if problems:
        raise RecipeInvalid(problems)
    _merge_duplicates(wishlist)
    collisions = public_path_problems(wishlist.wishes)
    if collisions:
        raise RecipeInvalid(collisions)
    return wishlist


def _merge_duplicates(wishlist: Wishlist) -> None:
    seen: dict[tuple[str, str], Wish] = {}
    merged: list[Recipe] = []
    for recipe in wishlist.recipes:
        kept: list[Wish] = []
        for wish in recipe.wishes:
            key = (str(wish.cvmfs_repo), str(wish.reference))
            first = seen.get(key)
            if first is None:
                seen[key] = wish
                kept.append(wish)
                continue
            wishlist.warnings.append(
                f"{wish.location}: duplicate of {first.location} ({wish.input}); merged"
            )
        merged.append(_with_wishes(recipe, tuple(kept)))
    wishlist.recipes = merged


def _with_wishes(recipe: Recipe, wishes: tuple[Wish, ...]) -> Recipe:
    return Recipe(
        path=recipe.path,
        cvmfs_repo=recipe.cvmfs_repo,
        wishes=wishes,
        user=recipe.user,
        output_format=recipe.output_format,
        ignore_errors=recipe.ignore_errors,
    )


class _RecipeParser:
    """Walks one recipe's YAML nodes, appending located problems and warnings."""

    def __init__(self, path: str, warnings: list[str], options: RecipeOptions) -> None:
        self.path = path
        self.own_problems: list[tuple[int, str]] = []  # (line, message), sorted at the end
        self.warnings = warnings
        self.options = options
        self.refused: list[tuple[int, int, str, str]] = []  # (line, index, input, problem)

    def problem(self, node: yaml.Node | None, message: str) -> None:
        if node is None:
            self.fail(0, f"{self.path}: {message}")
        else:
            self.fail(
                node.start_mark.line + 1, f"{self.path}:{node.start_mark.line + 1}: {message}"
            )

    def fail(self, line: int, text: str) -> None:
        self.own_problems.append((line, text))

    def warn(self, node: yaml.Node, message: str) -> None:
        self.warnings.append(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def tolerable(self, node: yaml.Node, message: str, outcome: str = "ignored") -> None:
        """Something DUCC let pass: a problem when read strictly, else a warning."""
        if self.options.strict:
            self.problem(node, message)
        else:
            self.warn(node, f"{message}; {outcome}")

    def entry_problem(self, node: yaml.Node, index: int, text: str, message: str) -> None:
        """An `input` entry that cannot be read: the recipe's problem, or a refused wish."""
        if self.options.strict:
            self.problem(node, message)
            return
        line = node.start_mark.line + 1
        self.refused.append((line, index, text, f"{self.path}:{line}: {message}"))

    def refused_wishes(self, recipe: Recipe) -> list[RefusedWish]:
        """The refused entries, named as they may be shown (never with credentials)."""
        return [
            RefusedWish(
                recipe=self.path,
                line=line,
                index=index,
                input=redacted_reference(text),
                problem=problem,
                cvmfs_repo=recipe.cvmfs_repo,
                ignore_errors=any(g.matches(text) for g in recipe.ignore_errors),
            )
            for line, index, text, problem in sorted(self.refused)
        ]

    def parse(self) -> Recipe | None:
        root = self.compose()
        if root is None:
            return None
        if not isinstance(root, yaml.MappingNode):
            self.problem(root, f"a recipe is a mapping of keys, got {node_kind(root)}")
            return None
        keys = self.keys(root)
        self.check_version(root, keys.get("version"))
        repo = self.cvmfs_repo(root, keys.get("cvmfs_repo"))
        user = self.optional_string(keys.get("user"), "user")
        output_format = self.output_format(keys.get("output_format"))
        ignore = self.ignore_errors(keys.get("ignoreErrors"), self.options.extra_ignore_errors)
        inputs = self.inputs(root, keys.get("input"))
        if repo is None or self.own_problems:
            return None
        wishes = tuple(
            Wish(
                recipe=self.path,
                line=node.start_mark.line + 1,
                index=index,
                input=text,
                reference=ref,
                cvmfs_repo=repo,
                output_format=output_format,
                ignore_errors=any(g.matches(text) or g.matches(str(ref)) for g in ignore),
            )
            for index, node, text, ref in inputs
        )
        return Recipe(self.path, repo, wishes, user, output_format, tuple(ignore))

    def compose(self) -> yaml.Node | None:
        try:
            data = Path(self.path).read_bytes()
        except OSError as exc:
            self.fail(0, f"{self.path}: cannot read the recipe: {exc.strerror}")
            return None
        if len(data) > MAX_RECIPE_BYTES:
            self.fail(0, f"{self.path}: larger than {MAX_RECIPE_BYTES} bytes")
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            byte = data[exc.start]
            self.fail(line, f"{self.path}:{line}: not UTF-8 (byte 0x{byte:02x})")
            return None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f":{mark.line + 1}" if mark is not None else ""
            self.fail(0, f"{self.path}{where}: YAML syntax error: {exc.problem}")
            return None
        except yaml.YAMLError as exc:
            self.fail(0, f"{self.path}: YAML error: {exc}")
            return None
        if node is None:
            self.fail(0, f"{self.path}: the recipe is empty")
        return node

    def keys(self, root: yaml.MappingNode) -> dict[str, yaml.Node]:
        found: dict[str, yaml.Node] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in root.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, f"keys must be strings, got {node_kind(key_node)}")
                continue
            if key in found:
                self.problem(key_node, f"duplicate key {key!r} (first at line {lines[key]})")
                continue
            found[key] = value_node
            lines[key] = key_node.start_mark.line + 1
            if key not in KNOWN_KEYS:
                self.warn(key_node, f"unknown key {key!r} ignored{_suggest(key)}")
        return found

    def check_version(self, root: yaml.Node, node: yaml.Node | None) -> None:
        if node is None:
            self.warn(root, "no 'version' key: read as version 1 (DUCC never checked it)")
            return
        value = node_value(node)
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(node, f"version: expected the integer 1, got {node_kind(node)}")
        elif value != 1:
            self.problem(node, f"version: unsupported version {value} (only 1 is supported)")

    def cvmfs_repo(self, root: yaml.Node, node: yaml.Node | None) -> CvmfsRepo | None:
        given = self.options.repository
        if given is not None:  # `prune-images REPO`: DUCC read only `input:` then
            if node is not None and node_value(node) != str(given):
                self.warn(
                    node, f"cvmfs_repo {node_value(node)!r} ignored: the repository is {given}"
                )
            return given
        if node is None:
            self.problem(root, "missing required key 'cvmfs_repo'")
            return None
        text = self.optional_string(node, "cvmfs_repo")
        if text is None:
            return None
        problem = cvmfs_repo_problem(text)
        if problem:
            self.problem(node, f"cvmfs_repo: {problem}")
            return None
        name, _, subdir = text.partition("/")
        return CvmfsRepo(name, subdir)

    def optional_string(self, node: yaml.Node | None, key: str) -> str | None:
        if node is None:
            return None
        value = node_value(node)
        if not isinstance(value, str):
            self.problem(node, f"{key}: expected a string, got {node_kind(node)}")
            return None
        if not value:
            self.problem(node, f"{key}: must not be empty")
            return None
        return value

    def output_format(self, node: yaml.Node | None) -> str | None:
        text = self.optional_string(node, "output_format")
        if text is None or node is None:
            return None
        unknown = [m.group("name") for m in VARIABLE.finditer(text)]
        unknown = [name for name in unknown if name not in OUTPUT_VARIABLES]
        if unknown:
            known = ", ".join(f"$({v})" for v in OUTPUT_VARIABLES)
            message = f"output_format: unknown variable $({unknown[0]}) (known: {known})"
            self.tolerable(node, message, "kept as written, as DUCC kept it")
            return None if self.options.strict else text
        return text

    def ignore_errors(self, node: yaml.Node | None, extra: tuple[str, ...]) -> list[Glob]:
        globs: list[Glob] = []
        for pattern in extra:
            try:
                globs.append(compile_glob(pattern, separator="/"))
            except BadPattern as exc:
                self.fail(0, f"{self.path}: ignoreErrors (DUCC_IGNORE_ERRORS_FILE): {exc}")
        for index, item, text in self.string_list(node, "ignoreErrors", allow_empty=True):
            try:
                globs.append(compile_glob(text, separator="/"))
            except BadPattern as exc:
                self.tolerable(item, f"ignoreErrors[{index}]: {exc}")
        return globs

    def inputs(
        self, root: yaml.Node, node: yaml.Node | None
    ) -> list[tuple[int, yaml.Node, str, Reference]]:
        if node is None:
            self.problem(root, "missing required key 'input' (a list of images)")
            return []
        parsed: list[tuple[int, yaml.Node, str, Reference]] = []
        for index, item, text in self.string_list(node, "input", allow_empty=False):
            try:
                ref = parse_reference(text)
            except BadReference as exc:
                self.entry_problem(item, index, text, f"input[{index}]: {exc}")
                continue
            if ref.tag_is_default:
                self.warn(item, f"input[{index}]: {text!r} has no tag or digest; using 'latest'")
            if ref.pattern is TagPattern.DUCC_REGEX:
                self.warn(item, f"input[{index}]: {ducc_regex_warning(ref.tag or '')}")
            parsed.append((index, item, text, ref))
        return parsed

    def string_list(
        self, node: yaml.Node | None, key: str, *, allow_empty: bool
    ) -> list[tuple[int, yaml.Node, str]]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{key}: expected a list, got {node_kind(node)}")
            return []
        if not node.value and not allow_empty:
            self.problem(node, f"{key}: the list is empty")
        items: list[tuple[int, yaml.Node, str]] = []
        for index, item in enumerate(node.value):
            value = node_value(item)
            if isinstance(value, str) and value:
                items.append((index, item, value))
                continue
            got = f"expected a string, got {node_kind(item)}" if value != "" else "empty string"
            if key == "input":
                self.entry_problem(item, index, node_source(item), f"{key}[{index}]: {got}")
            elif key == "ignoreErrors":
                self.tolerable(item, f"{key}[{index}]: {got}")
            else:
                self.problem(item, f"{key}[{index}]: {got}")
        return items


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
