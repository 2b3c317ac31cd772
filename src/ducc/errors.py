"""Every error ducc raises on purpose, with the exit code the command line maps it to.

This module imports nothing from the project. Library code raises these; only the command
line turns them into messages and exit codes (0 ok, 1 some work failed, 2 bad input or
usage, 130 interrupted).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


class DuccError(Exception):
    """Base of every expected failure: a message saying what happened and a hint what to do."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- bad input (exit 2) -------------------------------------------------------------------


class InputError(DuccError):
    """The user gave something ducc cannot work with; nothing was done."""

    exit_code = ExitCode.BAD_INPUT


class BadReference(InputError):
    """An image reference does not follow `[scheme://]host[:port]/repository[:tag][@digest]`."""


class BadPattern(InputError):
    """A glob (wildcard tag or ignoreErrors entry) is malformed."""


class BadPlatform(InputError):
    """A platform is not `os/architecture[/variant]`."""


class CredentialsInvalid(InputError):
    """A credentials source (auth.json, DUCC_<registry>_USER/_PASS) is malformed."""


class RecipeInvalid(InputError):
    """One or more recipes have problems; `problems` holds every one, already located."""

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun} in the recipe:\n" + "\n".join(problems),
            hint="fix the entries above; nothing was converted",
        )
        self.problems = problems


# --- content that fails verification ------------------------------------------------------


class VerificationError(DuccError):
    """Content did not match what it claims to be (digest, size, media type)."""


class DigestMismatch(VerificationError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{what}: digest mismatch: expected {expected}, got {actual}",
            hint="the registry served different bytes than the manifest names; nothing was kept",
        )
        self.expected = expected
        self.actual = actual


class SizeMismatch(VerificationError):
    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual


class ManifestError(VerificationError):
    """A manifest, index or config is malformed or unsupported."""


# --- registry -----------------------------------------------------------------------------


class RegistryError(DuccError):
    """The registry answered with an error, or could not be reached.

    `code` is the registry's own error code (MANIFEST_UNKNOWN, DENIED, ...) when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status


class NotFound(RegistryError):
    """Repository, tag, manifest or blob unknown to the registry."""


class AuthError(RegistryError):
    """Authentication or authorization failed (UNAUTHORIZED, DENIED)."""


class NoMatchingTags(NotFound):
    """A wildcard tag matched none of the tags the registry lists."""


class NoMatchingPlatform(RegistryError):
    """An index holds no manifest for the requested platform."""


class TransientError(RegistryError):
    """A fault worth retrying: connection error, timeout, 5xx, 429.

    `retry_after` is the wait in seconds the registry asked for (`Retry-After`), if any.
    """

    retry_after: float | None = None


class RateLimited(TransientError):
    """The registry answers 429 TOOMANYREQUESTS or reports its pull limit exhausted."""


class TransferTooSlow(TransientError):
    """A body arrived slower than the minimum rate over the rate window (a trickling peer)."""


class DeadlineExceeded(RegistryError):
    """A request (with its retries) or an image's registry traffic ran out of time.

    Not retried: the time allowed is spent. `image` tells an image's deadline from one
    request's.
    """

    def __init__(self, message: str, *, image: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.image = image


class RegistryStalled(RegistryError):
    """A registry used up a whole request deadline a moment ago; its requests fail at once
    until the cool-down ends, so that one stalled registry does not hold the others up."""


# --- layers -------------------------------------------------------------------------------


class LayerError(DuccError):
    """A layer could not be applied."""


class HostileLayer(LayerError):
    """A layer tried to leave its tree or exceed a limit; it names the layer and the entry."""

    def __init__(self, layer: str, entry: str, reason: str) -> None:
        super().__init__(
            f"layer {layer}: entry {entry!r}: {reason}",
            hint="the layer was refused and nothing built from it was kept",
        )
        self.layer = layer
        self.entry = entry
        self.reason = reason


class MalformedLayer(HostileLayer):
    """The layer is not a well-formed tar (a bad header, data cut short). A damaged download
    looks the same, so the blob digest is checked before this is reported."""


# --- publishing ---------------------------------------------------------------------------


class PublishError(DuccError):
    """The publisher (cvmfs_server or the directory publisher) failed."""


class CommandFailed(PublishError):
    """An external command exited non-zero; `command` is copy-pastable."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        tail = output.strip()[-2000:]
        super().__init__(
            f"command failed with exit code {returncode}: {command}" + (f"\n{tail}" if tail else "")
        )
        self.command = command
        self.returncode = returncode
        self.output = output


class RepositoryBusy(PublishError):
    """Another transaction or another ducc holds the repository."""


class AnotherDuccRunning(RepositoryBusy):
    """Another ducc process holds the repository's lock (a cron run overlapping)."""


# --- products in the repository ----------------------------------------------------------


class ProductError(DuccError):
    """A product in the repository (flat tree, podman store) is malformed or cannot be written."""


class FlatTreeError(ProductError):
    """A flat root filesystem cannot take the Apptainer files (missing, or not a directory)."""


class PodmanStoreError(ProductError):
    """The podman additional image store is malformed or an entry does not fit it."""


class RecordUnreadable(ProductError):
    """A record of a published image (`.metadata/.../manifest.json`) cannot be read, in
    ducc's form or in DUCC's."""


class UnreadableRecords(ProductError):
    """gc found records it cannot read: it cannot tell what they reach, so it removes nothing."""

    def __init__(self, records: list[str]) -> None:
        count = len(records)
        noun = "record" if count == 1 else "records"
        super().__init__(
            f"{count} {noun} of published images cannot be read; nothing was removed:\n"
            + "\n".join(f"  {record}" for record in records),
            hint="repair or remove these records (`ducc delete-image`, or convert the images "
            "again), then run gc again; `ducc verify` lists them too",
        )
        self.records = records


class StateError(DuccError):
    """ducc's local state database cannot be used; the message names the file."""


class Interrupted(DuccError):
    """SIGINT or SIGTERM arrived; the open transaction was finished or aborted."""

    exit_code = ExitCode.INTERRUPTED
