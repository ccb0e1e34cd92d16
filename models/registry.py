"""The model registry: versions and aliases in the object store (a local folder or S3), so every API
process and worker sees the same models and the same champion.

Layout (under `prefix`, default ``registry/``)::

    versions/<version>/model.onnx, SHA256SUMS, calibration.json, training.json, checkpoint.pt,
                       card.md?, metrics.json?      the files of the version folder, byte for byte
    versions/<version>/version.json                 written last: a version exists once it is there
    aliases/<name>.json                             {version, updated_at, by, reason}
    aliases/<name>/history/<seq:08d>.json           every change of the alias, append-only
    evalsets/<name>/manifest.csv, images/<sha256>   the fixed evaluation set of the promotion gate

Rules
-----
- A version is immutable: `register` refuses an existing version (`VersionExists`) and never
  touches an alias. It verifies the folder's SHA256SUMS before uploading anything, and refuses a
  model that does not follow the serving contract (`models.inference.DamageModel` loads it).
- `version.json` records the version, its parent, who registered it and when, the training
  manifest's sha256 (ONNX metadata, else training.json), a metrics summary (metrics.json) and the
  sha256 and size of every file; `fetch` checks every downloaded byte against it.
- Aliases: ``champion`` (the model that serves) and ``challenger`` (the candidate, run in shadow).
  `set_alias` appends a history entry, then writes the alias. `rollback_target` reads the champion's
  history as a stack: each change pushes a version, each rollback pops one, so rolling back twice
  after v1 -> v2 -> v3 gives v2 and then v1 (not v3 again).
- `fetch(version)` downloads a version once into ``cache_dir/<version>/`` (a temporary folder,
  verified, then renamed into place), and re-verifies a cached copy on every call (a changed byte
  in the cache is downloaded again). The folder is what `models.inference.load_model` takes.
- `bootstrap(bundled)`: when there is no champion, register the bundled model (if needed) and make
  it champion with reason "bundled starter model", so a fresh deployment always serves something.

Concurrency: alias writes in one process are serialised by a lock; two processes changing the same
alias at the same instant could both pick the same history number (the later write wins). Changes
are rare and made by people (admin API or CLI), so this is accepted rather than adding a lock
service.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import mimetypes
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from models.inference import (
    CHECKSUM_FILENAME,
    MODEL_FILENAME,
    WEIGHTS_DIR,
    ChecksumError,
    DamageModel,
    ModelError,
    sha256_file,
)
from models.promotion import Sample
from storage.objects import ObjectNotFound, ObjectStore

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "registry"
CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
VERSION_FILE = "version.json"
# Files of a version folder (training/export.py, training/card.py, training/evaluate.py).
KNOWN_FILES = (
    MODEL_FILENAME,
    "card.md",
    "metrics.json",
    "calibration.json",
    "training.json",
    "checkpoint.pt",
)
BOOTSTRAP_REASON = "bundled starter model"
CACHE_SUBDIR = "model-cache"
FIXED_EVALSET = "fixed"
EVALSET_MANIFEST = "manifest.csv"
EVALSET_FIELDS = ("path", "grade", "damaged", "group", "source", "split")
META_TRAIN_MANIFEST = "claimlane.train_manifest_sha256"
HISTORY_DIGITS = 8

_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class RegistryError(Exception):
    """The registry refused or failed an operation."""


class VersionExists(RegistryError):
    """The version is already registered (versions are immutable)."""


class VersionNotFound(RegistryError, KeyError):
    """No such version in the registry."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class RegistryChecksumError(RegistryError, ChecksumError):
    """A file does not match its recorded sha256 (corrupt or tampered upload, download or cache)."""


class NoRollbackTarget(RegistryError):
    """The alias history has no earlier version to go back to."""


def cache_dir_for(data_dir: str | os.PathLike[str]) -> Path:
    """Where a service keeps fetched versions: ``<data_dir>/model-cache``."""
    return Path(data_dir) / CACHE_SUBDIR


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise RegistryError(
            f"invalid version name {version!r}: 1-64 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return version


def read_checksums(text: str) -> dict[str, str]:
    """SHA256SUMS text (sha256sum format) -> {file name: hex digest}."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or parts[0].startswith("#"):
            continue
        digest, name = parts
        name = name.lstrip("*").removeprefix("./")
        sums[name] = digest.lower()
    return sums


def verify_folder(folder: Path) -> dict[str, str]:
    """Check every file listed in `folder`/SHA256SUMS; returns the listing.

    Raises RegistryChecksumError when SHA256SUMS is missing, lists no model.onnx, names a file that
    is missing or outside the folder, or a file does not match.
    """
    sums_file = folder / CHECKSUM_FILENAME
    if not sums_file.is_file():
        raise RegistryChecksumError(f"{folder}: no {CHECKSUM_FILENAME} to verify the files against")
    sums = read_checksums(sums_file.read_text(encoding="utf-8"))
    if MODEL_FILENAME not in sums:
        raise RegistryChecksumError(f"{sums_file} has no entry for {MODEL_FILENAME}")
    for name, digest in sums.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise RegistryChecksumError(f"{sums_file}: unsupported file name {name!r}")
        path = folder / name
        if not path.is_file():
            raise RegistryChecksumError(f"{sums_file} lists {name}, which is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise RegistryChecksumError(
                f"{path} does not match {sums_file}: sha256 {actual}, expected {digest}"
            )
    return sums


def metrics_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics.json (training/evaluate.py layout, or a flat dict)."""
    found = metrics.get("binary")
    binary: Mapping[str, Any] = found if isinstance(found, Mapping) else metrics
    found = metrics.get("grade")
    grade: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    out: dict[str, Any] = {}
    for key in ("auroc", "ece", "brier", "fpr", "accuracy", "count"):
        value = binary.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    for key in ("accuracy", "mae", "qwk", "ece_top_label"):
        value = grade.get(key) if isinstance(grade, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"grade_{key}"] = value
    for key in ("split", "model_version"):
        if isinstance(metrics.get(key), str):
            out[key] = metrics[key]
    return out


@dataclass(frozen=True)
class VersionInfo:
    version: str
    parent: str | None
    created_at: str
    registered_by: str
    train_manifest_sha256: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, size}

    @property
    def auroc(self) -> float | None:
        value = self.metrics.get("auroc")
        return float(value) if isinstance(value, int | float) else None

    @property
    def ece(self) -> float | None:
        value = self.metrics.get("ece")
        return float(value) if isinstance(value, int | float) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "parent": self.parent,
            "created_at": self.created_at,
            "registered_by": self.registered_by,
            "train_manifest_sha256": self.train_manifest_sha256,
            "metrics": dict(self.metrics),
            "files": {k: dict(v) for k, v in self.files.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionInfo:
        return cls(
            version=str(data["version"]),
            parent=data.get("parent"),
            created_at=str(data.get("created_at", "")),
            registered_by=str(data.get("registered_by", "")),
            train_manifest_sha256=data.get("train_manifest_sha256") or None,
            metrics=dict(data.get("metrics") or {}),
            files={str(k): dict(v) for k, v in (data.get("files") or {}).items()},
        )


@dataclass(frozen=True)
class AliasChange:
    """One entry of an alias's history. `version` None: the alias was cleared."""

    seq: int
    name: str
    version: str | None
    previous: str | None
    updated_at: str
    by: str
    reason: str | None
    rollback: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "name": self.name,
            "version": self.version,
            "previous": self.previous,
            "updated_at": self.updated_at,
            "by": self.by,
            "reason": self.reason,
            "rollback": self.rollback,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AliasChange:
        return cls(
            seq=int(data["seq"]),
            name=str(data["name"]),
            version=data.get("version"),
            previous=data.get("previous"),
            updated_at=str(data.get("updated_at", "")),
            by=str(data.get("by", "")),
            reason=data.get("reason"),
            rollback=bool(data.get("rollback", False)),
        )


def _content_type(name: str) -> str:
    if name == CHECKSUM_FILENAME:
        return "text/plain"
    if name.endswith(".md"):
        return "text/markdown"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


class Registry:
    """Model versions, aliases and the fixed evaluation set in an `ObjectStore`."""

    def __init__(
        self, store: ObjectStore, *, cache_dir: str | os.PathLike[str], prefix: str = DEFAULT_PREFIX
    ):
        prefix = prefix.strip("/")
        if not prefix:
            raise ValueError("the registry needs a non-empty prefix")
        self.store = store
        self.cache_dir = Path(cache_dir)
        self.prefix = prefix
        self._alias_lock = threading.Lock()
        self._fetch_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({self.store!r}, prefix={self.prefix!r}, cache_dir={str(self.cache_dir)!r})"

    # -- keys --------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def _version_key(self, version: str, name: str = VERSION_FILE) -> str:
        return self._key("versions", version, name)

    def _alias_key(self, name: str) -> str:
        return self._key("aliases", f"{name}.json")

    def _history_prefix(self, name: str) -> str:
        return self._key("aliases", name, "history") + "/"

    def _read_json(self, key: str) -> Any:
        return json.loads(self.store.get(key).decode("utf-8"))

    # -- versions ----------------------------------------------------------------------------------

    def exists(self, version: str) -> bool:
        return self.store.exists(self._version_key(validate_version(version)))

    def register(
        self,
        version_dir: str | os.PathLike[str],
        *,
        parent: str | None = None,
        actor: str,
        allow_unsigned: bool = False,
    ) -> VersionInfo:
        """Upload a version folder (training/export.py layout) and return what was recorded.

        Verifies SHA256SUMS first (`allow_unsigned` lets a folder without one through, checksums
        computed here: only for the bundled model, whose files come with the code), loads the model
        to check the serving contract, refuses an existing version, then uploads the files and
        `version.json` last. Never changes an alias.
        """
        folder = Path(version_dir)
        if folder.is_file() and folder.name == MODEL_FILENAME:
            folder = folder.parent
        if not (folder / MODEL_FILENAME).is_file():
            raise RegistryError(f"{folder}: no {MODEL_FILENAME} (not a model version folder)")
        if (folder / CHECKSUM_FILENAME).is_file() or not allow_unsigned:
            sums = verify_folder(folder)
            sums_bytes = (folder / CHECKSUM_FILENAME).read_bytes()
        else:
            names = [n for n in KNOWN_FILES if (folder / n).is_file()]
            sums = {n: sha256_file(folder / n) for n in names}
            sums_bytes = "".join(f"{d}  {n}\n" for n, d in sums.items()).encode("utf-8")

        try:
            model = DamageModel(folder / MODEL_FILENAME, verify=False)  # verified just above
        except ModelError as exc:
            raise RegistryError(f"{folder}: not a servable model: {exc}") from exc
        version = validate_version(model.version)
        if self.exists(version):
            raise VersionExists(f"version {version} is already registered (versions are immutable)")

        training: dict[str, Any] = {}
        if (folder / "training.json").is_file():
            try:
                loaded = json.loads((folder / "training.json").read_text(encoding="utf-8"))
                training = loaded if isinstance(loaded, dict) else {}
            except json.JSONDecodeError as exc:
                raise RegistryError(f"{folder / 'training.json'} is not valid JSON: {exc}") from exc
        if parent is None and isinstance(training.get("parent"), str) and training["parent"]:
            parent = training["parent"] if self.exists(training["parent"]) else None
        if parent is not None:
            if parent == version:
                raise RegistryError(f"version {version} cannot be its own parent")
            if not self.exists(parent):
                raise VersionNotFound(f"parent version {parent} is not registered")

        metrics: dict[str, Any] = {}
        if (folder / "metrics.json").is_file():
            try:
                metrics = metrics_summary(json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
            except (json.JSONDecodeError, AttributeError) as exc:
                logger.warning("%s: unreadable metrics.json (%s); no metrics recorded", folder, exc)

        manifest_sha = (
            model.metadata.get(META_TRAIN_MANIFEST) or training.get("train_manifest_sha256") or None
        )

        names = list(dict.fromkeys([*sums, *(n for n in KNOWN_FILES if (folder / n).is_file())]))
        files: dict[str, dict[str, Any]] = {}
        for name in names:
            data = (folder / name).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if name in sums and sums[name] != digest:  # changed since it was verified
                raise RegistryChecksumError(f"{folder / name} changed while it was being registered")
            self.store.put(self._version_key(version, name), data, _content_type(name))
            files[name] = {"sha256": digest, "size": len(data)}
        self.store.put(self._version_key(version, CHECKSUM_FILENAME), sums_bytes, "text/plain")
        files[CHECKSUM_FILENAME] = {"sha256": hashlib.sha256(sums_bytes).hexdigest(), "size": len(sums_bytes)}

        info = VersionInfo(
            version=version,
            parent=parent,
            created_at=utc_now_iso(),
            registered_by=actor,
            train_manifest_sha256=manifest_sha,
            metrics=metrics,
            files=files,
        )
        self.store.put(self._version_key(version), _json_bytes(info.to_json()), "application/json")
        logger.info("registered model version %s (parent %s) by %s", version, parent, actor)
        return info

    def versions(self) -> list[VersionInfo]:
        """Every registered version, oldest first."""
        base = self._key("versions") + "/"
        out = []
        for key in self.store.list(base):
            parts = key[len(base) :].split("/")
            if len(parts) == 2 and parts[1] == VERSION_FILE:
                try:
                    out.append(VersionInfo.from_json(self._read_json(key)))
                except ObjectNotFound:
                    continue
        return sorted(out, key=lambda v: (v.created_at, v.version))

    def info(self, version: str) -> VersionInfo:
        try:
            return VersionInfo.from_json(self._read_json(self._version_key(validate_version(version))))
        except ObjectNotFound:
            raise VersionNotFound(f"no model version {version!r} in the registry") from None
        except RegistryError as exc:
            raise VersionNotFound(str(exc)) from None

    # -- aliases -----------------------------------------------------------------------------------

    @staticmethod
    def _check_alias(name: str) -> str:
        if name not in ALIASES:
            raise RegistryError(f"unknown alias {name!r} (known: {', '.join(ALIASES)})")
        return name

    def alias_record(self, name: str) -> dict[str, Any] | None:
        """``{version, updated_at, by, reason}`` of an alias, or None when it is not set."""
        try:
            return self._read_json(self._alias_key(self._check_alias(name)))
        except ObjectNotFound:
            return None

    def alias(self, name: str) -> str | None:
        record = self.alias_record(name)
        return record.get("version") if record else None

    def aliases(self) -> dict[str, str | None]:
        return {name: self.alias(name) for name in ALIASES}

    def history(self, name: str) -> list[AliasChange]:
        """Every change of the alias, oldest first."""
        self._check_alias(name)
        out = []
        for key in self.store.list(self._history_prefix(name)):
            try:
                out.append(AliasChange.from_json(self._read_json(key)))
            except ObjectNotFound:
                continue
        return sorted(out, key=lambda c: c.seq)

    def set_alias(
        self, name: str, version: str | None, *, actor: str, reason: str | None, rollback: bool = False
    ) -> AliasChange:
        """Point alias `name` at `version` (None clears it): history entry first, then the alias."""
        self._check_alias(name)
        if version is not None and not self.exists(version):
            raise VersionNotFound(f"no model version {version!r} in the registry")
        with self._alias_lock:
            previous = self.alias(name)
            history = self.store.list(self._history_prefix(name))
            seq = 1 + max(
                (int(PurePosixPath(k).stem) for k in history if PurePosixPath(k).stem.isdigit()), default=0
            )
            change = AliasChange(
                seq=seq,
                name=name,
                version=version,
                previous=previous,
                updated_at=utc_now_iso(),
                by=actor,
                reason=reason,
                rollback=rollback,
            )
            self.store.put(
                self._history_prefix(name) + f"{seq:0{HISTORY_DIGITS}d}.json",
                _json_bytes(change.to_json()),
                "application/json",
            )
            if version is None:
                self.store.delete(self._alias_key(name))
            else:
                record = {"version": version, "updated_at": change.updated_at, "by": actor, "reason": reason}
                self.store.put(self._alias_key(name), _json_bytes(record), "application/json")
        logger.info("alias %s: %s -> %s by %s (%s)", name, previous, version, actor, reason)
        return change

    def rollback_target(self, name: str = CHAMPION) -> str | None:
        """The version `name` pointed at before its current one, reading the history as a stack
        (a rollback pops the version it left), or None when there is none."""
        stack: list[str] = []
        for change in self.history(name):
            if change.rollback and stack:
                stack.pop()
            if change.version is not None and (not stack or stack[-1] != change.version):
                stack.append(change.version)
            # a cleared alias leaves the stack as it is
        current = self.alias(name)
        earlier = stack[:-1] if stack and stack[-1] == current else stack
        for version in reversed(earlier):
            if version != current:
                return version
        return None

    # -- fetching ----------------------------------------------------------------------------------

    def fetch(self, version: str) -> Path:
        """The version's folder in the local cache (downloaded once, verified on every call)."""
        info = self.info(version)
        target = self.cache_dir / info.version
        with self._fetch_lock:
            if target.is_dir():
                try:
                    self._verify_local(target, info)
                    return target
                except RegistryChecksumError as exc:
                    logger.warning("cached model %s is damaged (%s); downloading it again", version, exc)
                    self._discard(target)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{info.version}.", suffix=".partial", dir=self.cache_dir))
            try:
                for name, meta in info.files.items():
                    try:
                        data = self.store.get(self._version_key(info.version, name))
                    except ObjectNotFound:
                        raise RegistryChecksumError(
                            f"version {version}: {name} is missing from the store"
                        ) from None
                    digest = hashlib.sha256(data).hexdigest()
                    if digest != meta.get("sha256") or len(data) != meta.get("size", len(data)):
                        raise RegistryChecksumError(
                            f"version {version}: {name} in the store has sha256 {digest}, "
                            f"expected {meta.get('sha256')} (corrupt or tampered)"
                        )
                    (tmp / name).write_bytes(data)
                verify_folder(tmp)
                try:
                    os.rename(tmp, target)
                except OSError:
                    if not target.is_dir():
                        raise
                    self._verify_local(target, info)  # another process put it there first
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _verify_local(self, folder: Path, info: VersionInfo) -> None:
        for name, meta in info.files.items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != meta.get("sha256"):
                raise RegistryChecksumError(
                    f"{path} does not match the registry (sha256 {meta.get('sha256')})"
                )

    def _discard(self, folder: Path) -> None:
        trash = folder.with_name(f".{folder.name}.trash-{os.getpid()}-{threading.get_ident()}")
        try:
            os.rename(folder, trash)
        except OSError:
            trash = folder
        shutil.rmtree(trash, ignore_errors=True)

    # -- bootstrap ---------------------------------------------------------------------------------

    def bootstrap(
        self, bundled_dir: str | os.PathLike[str] | None = None, actor: str = "system"
    ) -> str | None:
        """Make sure there is a champion: when none is set, register the bundled model (the newest
        version folder under `bundled_dir`, or `bundled_dir` itself when it holds a model.onnx, or
        a model.onnx file) unless it already is, and make it champion. Returns the champion."""
        current = self.alias(CHAMPION)
        if current is not None:
            return current
        folder = _bundled_folder(Path(bundled_dir) if bundled_dir is not None else WEIGHTS_DIR)
        if folder is None:
            logger.warning(
                "model registry has no champion and there is no bundled model under %s", bundled_dir
            )
            return None
        try:
            version = self.register(folder, actor=actor, allow_unsigned=True).version
        except VersionExists:
            version = DamageModel(folder / MODEL_FILENAME, verify=False).version
        current = self.alias(CHAMPION)
        if current is not None:  # another process bootstrapped meanwhile
            return current
        self.set_alias(CHAMPION, version, actor=actor, reason=BOOTSTRAP_REASON)
        return version

    # -- the fixed evaluation set ------------------------------------------------------------------

    def _evalset_key(self, name: str, *parts: str) -> str:
        return self._key("evalsets", name, *parts)

    def put_evalset(
        self,
        manifest_path: str | os.PathLike[str],
        *,
        split: str | None = None,
        limit: int | None = None,
        name: str = FIXED_EVALSET,
        replace: bool = True,
    ) -> dict[str, Any]:
        """Upload a manifest (``path,grade,damaged,...``; paths relative to the manifest's folder)
        and its images as evaluation set `name`. Images are stored by content hash; the manifest is
        written last, then images no longer referenced are deleted. Returns `evalset_info`."""
        manifest_path = Path(manifest_path)
        if not replace and self.store.exists(self._evalset_key(name, EVALSET_MANIFEST)):
            raise RegistryError(f"evaluation set {name!r} is already installed (replace it explicitly)")
        rows = _read_eval_manifest(manifest_path)
        if split is not None:
            rows = [r for r in rows if r.get("split") == split]
        if limit is not None:
            if limit < 1:
                raise RegistryError(f"limit must be at least 1, got {limit}")
            rows = rows[:limit]
        if not rows:
            raise RegistryError(f"{manifest_path}: no rows to install (split={split!r})")

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EVALSET_FIELDS)
        keys: set[str] = set()
        for row in rows:
            image = Path(row["path"])
            image = image if image.is_absolute() else manifest_path.parent / image
            try:
                data = image.read_bytes()
            except OSError as exc:
                raise RegistryError(f"{manifest_path}: cannot read image {image}: {exc}") from exc
            suffix = image.suffix.lower() if image.suffix.lower() in _IMAGE_SUFFIXES else ""
            rel = f"images/{hashlib.sha256(data).hexdigest()}{suffix}"
            key = self._evalset_key(name, rel)
            if key not in keys and not self.store.exists(key):
                self.store.put(key, data, mimetypes.guess_type(image.name)[0] or "application/octet-stream")
            keys.add(key)
            writer.writerow([rel, row["grade"], row["damaged"], row["group"], row["source"], row["split"]])
        self.store.put(self._evalset_key(name, EVALSET_MANIFEST), out.getvalue().encode("utf-8"), "text/csv")
        for key in self.store.list(self._evalset_key(name, "images") + "/"):
            if key not in keys:
                self.store.delete(key)
        return self.evalset_info(name) or {}

    def evalset_info(self, name: str = FIXED_EVALSET) -> dict[str, Any] | None:
        """``{name, sha256 (of the manifest), count, damaged, graded}``, or None when not installed."""
        try:
            data = self.store.get(self._evalset_key(name, EVALSET_MANIFEST))
        except ObjectNotFound:
            return None
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        return {
            "name": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "count": len(rows),
            "damaged": sum(1 for r in rows if r.get("damaged") == "1"),
            "graded": sum(1 for r in rows if r.get("grade") not in ("", None)),
        }

    def evalset_samples(self, name: str = FIXED_EVALSET) -> list[Sample]:
        """The evaluation set's photos and labels (empty when it is not installed)."""
        try:
            data = self.store.get(self._evalset_key(name, EVALSET_MANIFEST))
        except ObjectNotFound:
            return []
        samples = []
        for row in csv.DictReader(io.StringIO(data.decode("utf-8"))):
            try:
                image = self.store.get(self._evalset_key(name, row["path"]))
            except ObjectNotFound:
                logger.warning("evaluation set %s: image %s is missing; skipped", name, row["path"])
                continue
            grade = int(row["grade"]) if row.get("grade") not in ("", None) else None
            samples.append(Sample(image=image, grade=grade, damaged=int(row["damaged"])))
        return samples


def _read_eval_manifest(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"path", "damaged"} - set(reader.fieldnames or ())
            if missing:
                raise RegistryError(f"{path}: missing columns {sorted(missing)}")
            rows = []
            for i, record in enumerate(reader, start=2):
                grade = (record.get("grade") or "").strip()
                damaged = (record.get("damaged") or "").strip()
                if grade and grade not in ("0", "1", "2", "3"):
                    raise RegistryError(f"{path}:{i}: grade must be 0-3 or empty, got {grade!r}")
                if damaged not in ("0", "1"):
                    raise RegistryError(f"{path}:{i}: damaged must be 0 or 1, got {damaged!r}")
                if grade and int(int(grade) >= 1) != int(damaged):
                    raise RegistryError(f"{path}:{i}: damaged={damaged} contradicts grade={grade}")
                rows.append(
                    {
                        "path": record["path"],
                        "grade": grade,
                        "damaged": damaged,
                        "group": record.get("group") or "",
                        "source": record.get("source") or "",
                        "split": record.get("split") or "",
                    }
                )
            return rows
    except OSError as exc:
        raise RegistryError(f"cannot read manifest {path}: {exc}") from exc


def _bundled_folder(path: Path) -> Path | None:
    """A version folder from a model.onnx, a version folder, or a folder of version folders (the
    newest by name, as `models.inference.default_model_path` picks)."""
    if path.is_file():
        return path.parent if path.name == MODEL_FILENAME else None
    if (path / MODEL_FILENAME).is_file():
        return path
    if not path.is_dir():
        return None
    candidates = sorted(
        (d for d in path.iterdir() if d.is_dir() and (d / MODEL_FILENAME).is_file()), key=lambda d: d.name
    )
    return candidates[-1] if candidates else None
