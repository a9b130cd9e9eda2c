"""A Hub-compatible server for tests: exactly the endpoints huggingface_hub 2.4 uses to push and download a model.

Upload: repo creation, YAML validation, pre-upload, LFS batch and PUT, NDJSON commit. Download: revision info, tree
listing, resolve (HEAD and GET) with the headers the download code checks. Repos and files live in memory; no Xet
(clients must set `HF_HUB_DISABLE_XET=1`). `fail_next_commits(n)` makes the next n commit calls answer 503.

Tokens: `whoami-v2` answers as the Hub does (user name, organisations with the user's role in each, and the token's
role: read, write or fineGrained with scoped permissions); an unknown token gets 401 there and on every write, and
a token that may not write to a namespace gets 403 on repo creation. `add_token` registers more tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".npy", ".zip")
LFS_MIN_SIZE = 10 * 1024 * 1024
REPO = r"(?P<repo>[^/]+/[^/]+)"


def hub_date(moment: datetime | None = None) -> str:
    """A date as the Hub writes it (`2026-11-26T00:41:23.129Z`); `+00:00` breaks the client's parser."""
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else git_blob_sha1(self.content)


@dataclass
class Commit:
    oid: str
    message: str
    date: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    private: bool
    created: str
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def find(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.oid == revision), None)


class HubState:
    """The server's data, shared by its handler threads and readable by the tests."""

    def __init__(self, token: str, user: str = "user"):
        self.token = token
        self.user = user
        # The user's organisations and role in each, as whoami-v2 lists them.
        self.orgs: dict[str, str] = {"user-org": "write", "readers-org": "read"}
        # token -> the `auth.accessToken` part of whoami-v2 (role read/write/fineGrained, scoped permissions).
        self.tokens: dict[str, dict] = {token: {"displayName": "test-write", "role": "write"}}
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.failures_left = 0
        self.failure_status = 503
        self.lock = threading.Lock()

    def add_token(self, token: str, role: str = "read", scoped: list[dict] | None = None) -> None:
        """Registers a token: `role` read or write, or fineGrained with `scoped` [{"entity": {"type", "name"},
        "permissions": [...]}] as the Hub lists them."""
        access = {"displayName": f"test-{role}", "role": role}
        if role == "fineGrained":
            access["fineGrained"] = {"canReadGatedRepos": False, "global": [], "scoped": scoped or []}
        self.tokens[token] = access

    def may_write(self, token: str, namespace: str) -> bool:
        """What the Hub enforces on writes: membership with more than read, and a token that may write there."""
        access = self.tokens.get(token, {})
        if namespace != self.user and self.orgs.get(namespace, "read") == "read":
            return False
        if access.get("role") == "write":
            return True
        scoped = access.get("fineGrained", {}).get("scoped", [])
        return any(
            scope["entity"]["name"] == namespace and "repo.write" in scope.get("permissions", []) for scope in scoped
        )

    def whoami(self, token: str) -> dict:
        """The `/api/whoami-v2` answer for a known token, shaped like the Hub's."""
        orgs = [
            {"type": "org", "name": name, "fullname": name, "roleInOrg": role, "isEnterprise": False}
            for name, role in self.orgs.items()
        ]
        return {
            "type": "user",
            "id": hashlib.md5(self.user.encode()).hexdigest()[:24],
            "name": self.user,
            "fullname": self.user.title(),
            "email": f"{self.user}@example.com",
            "emailVerified": True,
            "isPro": False,
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {**self.tokens[token], "createdAt": hub_date()}},
        }

    def fail_next_commits(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.failures_left, self.failure_status = count, status

    def all_stored_bytes(self) -> list[bytes]:
        blobs = list(self.lfs_objects.values())
        for repo in self.repos.values():
            for commit in repo.commits:
                blobs += [f.content for f in commit.files.values()] + [commit.message.encode()]
        return blobs

    def new_commit(self, repo: Repo, message: str, files: dict[str, StoredFile]) -> Commit:
        seed = f"{repo.repo_id}:{len(repo.commits)}:{message}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), message, hub_date(), files)
        repo.commits.append(commit)
        return commit


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState
    base_url: str

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    # -- plumbing -------------------------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: object = b"", headers: dict | None = None, head_only: bool = False) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str, head_only: bool = False) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        self.reply(status, {"error": message}, headers, head_only=head_only)

    def bearer(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def authorized(self) -> bool:
        return self.bearer() in self.state.tokens

    def readable_repo(self, repo_id: str, head_only: bool = False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self.authorized()):
            status = 401 if repo is not None or not self.authorized() else 404
            self.error(status, "RepoNotFound", f"Repository not found: {repo_id}", head_only)
            return None
        return repo

    def readable_commit(self, repo_id: str, revision: str, head_only: bool = False) -> tuple[Repo, Commit] | None:
        """The repo and the commit a revision names, or None after answering 401/404 as the Hub does."""
        repo = self.readable_repo(repo_id, head_only)
        if repo is None:
            return None
        commit = repo.find(revision)
        if commit is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head_only)
            return None
        return repo, commit

    def route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        with self.state.lock:
            self.state.requests.append((method, path))
        for pattern, handler_name in ROUTES.get(method, []):
            match = re.fullmatch(pattern, path)
            if match:
                getattr(self, handler_name)(**match.groupdict(), query=parse_qs(url.query))
                return
        self.error(404, "NotImplemented", f"The test server does not implement {method} {path}")

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    # -- upload ---------------------------------------------------------------------------------------------------

    def whoami(self, query):
        if not self.authorized():
            return self.error(401, "Unauthorized", "Invalid credentials in Authorization header")
        self.reply(200, self.state.whoami(self.bearer()))

    def create_repo(self, query):
        payload = json.loads(self.read_body())
        if not self.authorized():
            return self.error(401, "Unauthorized", "Invalid credentials in Authorization header")
        namespace = payload.get("organization") or self.state.user
        if not self.state.may_write(self.bearer(), namespace):
            return self.error(403, "Forbidden", f"You don't have the rights to create a model under {namespace}")
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.base_url}/{repo_id}"
        with self.state.lock:
            if repo_id in self.state.repos:
                return self.reply(409, {"error": "You already created this model repo", "url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(repo_id, private, hub_date())
            attributes = StoredFile(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", lfs=False)
            self.state.new_commit(repo, "initial commit", {".gitattributes": attributes})
            self.state.repos[repo_id] = repo
        self.reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, query):
        content = json.loads(self.read_body())["content"]
        parts = content.split("---")
        try:
            metadata = yaml.safe_load(parts[1]) if content.startswith("---") and len(parts) > 2 else None
        except yaml.YAMLError as error:
            return self.reply(400, {"errors": [{"message": f"Invalid YAML: {error}"}], "warnings": []})
        warnings = [] if metadata else [{"message": "Empty or missing yaml metadata in repo card"}]
        self.reply(200, {"errors": [], "warnings": warnings})

    def writable_repo(self, repo_id: str) -> Repo | None:
        if not self.authorized():
            self.error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return None
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self.error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        elif not self.state.may_write(self.bearer(), repo_id.split("/")[0]):
            self.error(403, "Forbidden", f"You don't have the rights to write to {repo_id}")
            return None
        return repo

    def preupload(self, repo, revision, query):
        files = json.loads(self.read_body())["files"]
        repo = self.writable_repo(repo)
        if repo is None:
            return
        head = repo.find(revision)
        answers = []
        for item in files:
            sample = base64.b64decode(item["sample"])
            lfs = item["path"].endswith(LFS_SUFFIXES) or b"\0" in sample or item["size"] >= LFS_MIN_SIZE
            existing = head.files.get(item["path"]) if head else None
            answers.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.etag if existing else None,
                }
            )
        self.reply(200, {"files": answers, "commitOid": head.oid if head else None})

    def lfs_batch(self, repo, query):
        payload = json.loads(self.read_body())
        if self.writable_repo(repo) is None:
            return
        objects = []
        for item in payload["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.state.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.base_url}/lfs-upload/{item['oid']}"}}
            objects.append(entry)
        self.reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, oid, query):
        content = self.read_body()
        if hashlib.sha256(content).hexdigest() != oid:
            return self.error(400, "BadRequest", f"Uploaded content does not match sha256 {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = content
        self.reply(200, b"")

    def commit(self, repo, revision, query):
        lines = [json.loads(line) for line in self.read_body().splitlines() if line.strip()]
        repo = self.writable_repo(repo)
        if repo is None:
            return
        with self.state.lock:
            if self.state.failures_left > 0:
                self.state.failures_left -= 1
                return self.error(self.state.failure_status, "ServiceUnavailable", "Injected failure: try again")
            parent = repo.find(revision)
            if parent is None:
                return self.error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            files = dict(parent.files)
            header = {}
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    if value["oid"] not in self.state.lfs_objects:
                        return self.error(400, "BadRequest", f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = StoredFile(self.state.lfs_objects[value["oid"]], lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
            commit = self.state.new_commit(repo, header.get("summary", ""), files)
        url = f"{self.base_url}/{repo.repo_id}/commit/{commit.oid}"
        self.reply(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    # -- download -------------------------------------------------------------------------------------------------

    def revision_info(self, repo, query, revision="main"):
        repo_id = repo
        found = self.readable_commit(repo_id, revision)
        if found is None:
            return
        repo, commit = found
        self.reply(
            200,
            {
                "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            },
        )

    def tree(self, repo, revision, query, path=None):
        found = self.readable_commit(repo, revision)
        if found is None:
            return
        _, commit = found
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        path = (path or "").strip("/")
        prefix = f"{path}/" if path else ""
        entries, folders = [], set()
        for file_path, stored in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    oid = git_blob_sha1(folder.encode())
                    entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
            if len(parts) > 1 and not recursive:
                continue
            oid, size = git_blob_sha1(stored.content), len(stored.content)
            entry = {"type": "file", "oid": oid, "size": size, "path": file_path}
            if stored.lfs:
                entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": 134}
            entries.append(entry)
        self.reply(200, entries)

    def resolve(self, repo, revision, path, query, head_only=False):
        found = self.readable_commit(repo, revision, head_only)
        if found is None:
            return
        _, commit = found
        stored = commit.files.get(path)
        if stored is None:
            return self.error(404, "EntryNotFound", f"Entry not found: {path}", head_only)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.etag}"', "Content-Type": "application/octet-stream"}
        if stored.lfs:
            headers |= {"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": len(stored.content)}
        self.reply(200, stored.content, headers, head_only=head_only)

    def resolve_head(self, repo, revision, path, query):
        self.resolve(repo, revision, path, query, head_only=True)


ROUTES = {
    "POST": [
        (r"/api/repos/create", "create_repo"),
        (r"/api/validate-yaml", "validate_yaml"),
        (rf"/api/models/{REPO}/preupload/(?P<revision>[^/]+)", "preupload"),
        (rf"/{REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        (rf"/api/models/{REPO}/commit/(?P<revision>[^/]+)", "commit"),
    ],
    "PUT": [(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_upload")],
    "GET": [
        (r"/api/whoami-v2", "whoami"),
        (rf"/api/models/{REPO}/revision/(?P<revision>[^/]+)", "revision_info"),
        (rf"/api/models/{REPO}", "revision_info"),
        (rf"/api/models/{REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", "tree"),
        (rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", "resolve"),
    ],
    "HEAD": [(rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", "resolve_head")],
}


class LocalHub:
    """The server on 127.0.0.1 and a free port, in a background thread; use as a context manager."""

    def __init__(self, token: str):
        self.state = HubState(token)
        handler = type("Handler", (HubHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        handler.base_url = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops serving and closes the port (again: a no-op), so clients then meet a refused connection."""
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
