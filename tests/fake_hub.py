"""A small local stand-in for the Hugging Face Hub, for tests (bound to 127.0.0.1, no network).

It implements what `huggingface_hub` 2.x (HfApi.create_repo / create_branch / upload_folder with regular and
legacy-LFS uploads, whoami, repo info) and `transformers` (hf_hub_download through `resolve`) use, so that
`HF_ENDPOINT=http://127.0.0.1:PORT` makes `upload_folder` and `pipeline(..., model=ID)` work offline.
Uploads take the LFS path for weights and images and the regular (inline base64) path for the rest; Xet
storage is not implemented, so clients must run with `HF_HUB_DISABLE_XET=1`.

    with FakeHub(tokens={"hf_alice": "alice"}) as hub:
        hub.url  # -> "http://127.0.0.1:PORT"
        hub.fail("preupload", 503, times=2)  # inject transient errors into the next calls of a route
"""

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".png", ".jpg", ".jpeg", ".mp4", ".gif")


def git_blob_sha1(content):
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class StoredFile:
    key: str  # sha256 for LFS files, git blob sha1 for regular ones
    size: int
    lfs: bool


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None = None
    refs: dict = field(default_factory=dict)  # branch or refs/pr/N -> commit oid
    commits: dict = field(default_factory=dict)  # oid -> {"files": {path: StoredFile}, "parent", "message"}
    pull_requests: int = 0


class HubError(Exception):
    def __init__(self, status, message, code=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    def __init__(self, tokens=None, orgs=None, read_only_tokens=(), host="127.0.0.1", port=0):
        self.tokens = dict(tokens or {"hf_test_token": "tester"})  # token -> user name
        self.read_only_tokens = set(read_only_tokens)  # tokens that may read but never write
        self.orgs = dict(orgs or {})  # user -> [organisation names]
        self.repos = {}  # (repo_type, repo_id) -> Repo
        self.blobs = {}  # key -> bytes
        self.requests = []  # (method, path) of every request, for assertions and debugging
        self.faults = {}  # route name -> [status, ...] returned before the real handler runs
        self.validated = []  # README metadata that passed /api/validate-yaml
        self.lock = threading.RLock()
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def fail(self, route, status, times=1):
        """Answer the next `times` calls of `route` (e.g. "preupload", "commit", "create") with `status`."""
        with self.lock:
            self.faults.setdefault(route, []).extend([status] * times)

    # ----------------------------------------------------------------------------- state helpers
    def create_repo(self, repo_id, owner_token=None, repo_type="model", private=False, sdk=None):
        """Create a repo directly (e.g. one owned by someone else); returns the Repo."""
        with self.lock:
            repo = Repo(repo_type, repo_id, private, sdk)
            oid = self._new_commit(repo, None, {}, "initial commit")
            repo.refs["main"] = oid
            content = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
            key = git_blob_sha1(content)
            self.blobs[key] = content
            repo.commits[oid]["files"][".gitattributes"] = StoredFile(key, len(content), False)
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def files(self, repo_id, revision="main", repo_type="model"):
        """{path: bytes} of a repo at a revision."""
        with self.lock:
            repo = self.repos[(repo_type, repo_id)]
            tree = repo.commits[repo.refs[revision]]["files"]
            return {path: self.blobs[entry.key] for path, entry in tree.items()}

    def _new_commit(self, repo, parent, files, message):
        oid = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        repo.commits[oid] = {"files": dict(files), "parent": parent, "message": message}
        return oid


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    # ----------------------------------------------------------------------------- plumbing
    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, payload=None, headers=None, body=None, head=False):
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _user(self, required=False):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            if required:
                raise HubError(401, "Invalid username or password.")
            return None
        user = self.hub.tokens.get(auth[len("Bearer "):])
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _namespaces(self, user):
        return {user, *self.hub.orgs.get(user, [])} if user else set()

    def _check_write_token(self):
        if self.headers.get("Authorization", "").removeprefix("Bearer ") in self.hub.read_only_tokens:
            raise HubError(403, "This token has read-only access; a write token is needed")

    def _repo(self, repo_type, repo_id, write=False):
        user = self._user(required=write)
        repo = self.hub.repos.get((repo_type, repo_id))
        readable = repo is not None and (not repo.private or repo_id.split("/")[0] in self._namespaces(user))
        if not readable:
            raise HubError(404, "Repository Not Found", "RepoNotFound")
        if write:
            self._check_write_token()
        if write and repo_id.split("/")[0] not in self._namespaces(user):
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _resolve(self, repo, revision):
        revision = unquote(revision)
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        self.query = parse_qs(parts.query)
        path = parts.path
        self.hub.requests.append((method, path))
        route, handler, args = self._route(method, path)
        try:
            with self.hub.lock:
                faults = self.hub.faults.get(route)
                if faults:
                    status = faults.pop(0)
                    raise HubError(status, f"injected failure {status} on {route}")
            if handler is None:
                raise HubError(404, f"fake hub: no route for {method} {path}")
            handler(*args)
        except HubError as error:
            headers = {"X-Error-Code": error.code} if error.code else {}
            headers["X-Error-Message"] = error.message
            self._send(error.status, {"error": error.message}, headers=headers, head=method == "HEAD")

    def _route(self, method, path):
        segments = [unquote(s) for s in path.strip("/").split("/")]
        api = segments[0] == "api"
        if api and segments[1:] == ["whoami-v2"] and method == "GET":
            return "whoami", self._whoami, ()
        if api and segments[1:] == ["repos", "create"] and method == "POST":
            return "create", self._create, ()
        if api and segments[1:] == ["validate-yaml"] and method == "POST":
            return "validate-yaml", self._validate_yaml, ()
        if api and len(segments) >= 4 and segments[1] in REPO_TYPES:
            route = self._repo_route(method, segments)
            if route is not None:
                return route
        if segments[:1] == ["_fake_lfs"]:
            if segments[1:] == ["verify"] and method == "POST":
                return "lfs-verify", self._lfs_verify, ()
            if method == "PUT" and len(segments) == 2:
                return "lfs-upload", self._lfs_upload, (segments[1],)
        if path.endswith(".git/info/lfs/objects/batch") and method == "POST":
            repo_type, repo_id = self._split_repo_path(path[: -len(".git/info/lfs/objects/batch")].strip("/"))
            return "lfs-batch", self._lfs_batch, (repo_type, repo_id)
        match = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if match and method in ("GET", "HEAD"):
            repo_type = REPO_TYPES[match.group(1)] if match.group(1) else "model"
            return "resolve", self._download, (repo_type, unquote(match.group(2)), match.group(3),
                                               unquote(match.group(4)), method == "HEAD")
        return "unknown", None, ()

    def _repo_route(self, method, segments):
        """The route of an /api/{models,datasets,spaces}/{namespace}/{name}/... request, or None."""
        repo_type, repo_id, rest = REPO_TYPES[segments[1]], "/".join(segments[2:4]), segments[4:]
        if not rest and method == "GET":
            return "info", self._info, (repo_type, repo_id, "main")
        action = rest[0] if rest else None
        tail = "/".join(rest[1:])
        if action == "revision" and method == "GET":
            return "info", self._info, (repo_type, repo_id, tail)
        if action == "refs" and method == "GET":
            return "refs", self._refs, (repo_type, repo_id)
        if action == "branch" and method == "POST":
            return "branch", self._branch, (repo_type, repo_id, tail)
        if action == "preupload" and method == "POST":
            return "preupload", self._preupload, (repo_type, repo_id, tail)
        if action == "commit" and method == "POST":
            return "commit", self._commit, (repo_type, repo_id, tail)
        if action == "tree" and method == "GET":
            revision, _, sub = tail.partition("/")
            return "tree", self._tree, (repo_type, repo_id, revision, sub)
        return None

    @staticmethod
    def _split_repo_path(path):
        for prefix, repo_type in (("datasets/", "dataset"), ("spaces/", "space")):
            if path.startswith(prefix):
                return repo_type, path[len(prefix):]
        return "model", path

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # ----------------------------------------------------------------------------- routes
    def _whoami(self):
        user = self._user(required=True)
        self._send(200, {
            "type": "user", "name": user, "fullname": user.title(),
            "orgs": [{"name": org, "type": "org"} for org in self.hub.orgs.get(user, [])],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "read" if (
                self.headers.get("Authorization", "").removeprefix("Bearer ") in self.hub.read_only_tokens)
                else "write"}},
        })

    def _create(self):
        user = self._user(required=True)
        self._check_write_token()
        payload = json.loads(self._body() or b"{}")
        namespace = payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        if namespace not in self._namespaces(user):
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace "
                                f"\"{namespace}\"")
        if (repo_type, repo_id) in self.hub.repos:  # the real Hub's 409 also carries the repo's url
            self._send(409, {"error": f"You already created this {repo_type} repo",
                             "url": f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"})
            return
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.hub.create_repo(repo_id, repo_type=repo_type, private=private, sdk=payload.get("sdk"))
        self._send(200, {"url": f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}", "name": repo_id})

    def _validate_yaml(self):
        """The README metadata check the client runs before committing a README.md: YAML that parses,
        with a well-formed `model-index` when there is one."""
        import yaml

        payload = json.loads(self._body())
        match = re.match(r"^---\n(.*?)\n---\n", payload.get("content", ""), re.S)
        errors = []
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as error:
            metadata, errors = {}, [f"invalid YAML: {error}"]
        for entry in (metadata or {}).get("model-index") or []:
            for result in entry.get("results", []):
                if not {"task", "dataset", "metrics"} <= set(result) or not all(
                        {"type", "value"} <= set(metric) for metric in result["metrics"]):
                    errors.append(f"model-index result is missing task/dataset/metrics: {result}")
        if errors:
            self._send(400, {"errors": [{"message": message} for message in errors]})
            return
        self.hub.validated.append(metadata)
        self._send(200, {"warnings": []})

    def _info(self, repo_type, repo_id, revision):
        repo = self._repo(repo_type, repo_id)
        oid = self._resolve(repo, revision)
        files = repo.commits[oid]["files"]
        info = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
            "sha": oid, "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": [], "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": path} for path in sorted(files)],
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        if repo_type == "space":
            info["sdk"] = repo.sdk
        self._send(200, info)

    def _refs(self, repo_type, repo_id):
        repo = self._repo(repo_type, repo_id)
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                    for name, oid in repo.refs.items() if not name.startswith("refs/")]
        self._send(200, {"branches": branches, "tags": [], "converts": []})

    def _branch(self, repo_type, repo_id, branch):
        repo = self._repo(repo_type, repo_id, write=True)
        payload = json.loads(self._body() or b"{}")
        if branch in repo.refs:
            raise HubError(409, f"Branch {branch} already exists")
        repo.refs[branch] = self._resolve(repo, payload.get("startingPoint") or "main")
        self._send(200, {})

    def _preupload(self, repo_type, repo_id, revision):
        repo = self._repo(repo_type, repo_id, write=True)
        payload = json.loads(self._body())
        current = repo.commits[self._resolve(repo, revision)]["files"] if unquote(revision) in repo.refs else {}
        files = []
        for item in payload["files"]:
            lfs = item["path"].lower().endswith(LFS_SUFFIXES) or item["size"] > 1_000_000
            existing = current.get(item["path"])
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": existing.key if existing else None})
        self._send(200, {"files": files, "commitOid": repo.refs.get(unquote(revision))})

    def _lfs_batch(self, repo_type, repo_id):
        self._repo(repo_type, repo_id, write=True)
        payload = json.loads(self._body())
        objects = []
        for item in payload["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.hub.blobs:
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/_fake_lfs/{item['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/_fake_lfs/verify", "header": {}},
                }
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_upload(self, oid):
        content = self._body()
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match oid {oid}")
        self.hub.blobs[oid] = content
        self._send(200, {})

    def _lfs_verify(self):
        payload = json.loads(self._body())
        blob = self.hub.blobs.get(payload["oid"])
        if blob is None or len(blob) != payload["size"]:
            raise HubError(404, f"object {payload['oid']} not uploaded")
        self._send(200, {})

    def _commit(self, repo_type, repo_id, revision):
        repo = self._repo(repo_type, repo_id, write=True)
        revision = unquote(revision)
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with self.hub.lock:
            parent = self._resolve(repo, revision)
            files = dict(repo.commits[parent]["files"])
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    content = base64.b64decode(value["content"])
                    blob_key = git_blob_sha1(content)
                    self.hub.blobs[blob_key] = content
                    files[value["path"]] = StoredFile(blob_key, len(content), False)
                elif key == "lfsFile":
                    blob = self.hub.blobs.get(value["oid"])
                    if blob is None:
                        raise HubError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                    files[value["path"]] = StoredFile(value["oid"], len(blob), True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {path: entry for path, entry in files.items() if not path.startswith(prefix)}
            oid = self.hub._new_commit(repo, parent, files, header.get("summary", ""))
            pr_url = None
            if self.query.get("create_pr") == ["1"]:
                repo.pull_requests += 1
                number = repo.pull_requests
                repo.refs[f"refs/pr/{number}"] = oid
                pr_url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}/discussions/{number}"
            else:
                repo.refs[revision] = oid
        self._send(200, {"commitUrl": f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}/commit/{oid}",
                         "commitOid": oid, "pullRequestUrl": pr_url, "success": True})

    def _tree(self, repo_type, repo_id, revision, sub):
        repo = self._repo(repo_type, repo_id)
        files = repo.commits[self._resolve(repo, revision)]["files"]
        prefix = sub.rstrip("/") + "/" if sub else ""
        entries = []
        for path, entry in sorted(files.items()):
            if path.startswith(prefix):
                item = {"type": "file", "oid": entry.key, "size": entry.size, "path": path}
                if entry.lfs:
                    item["lfs"] = {"oid": entry.key, "size": entry.size, "pointerSize": 134}
                entries.append(item)
        self._send(200, entries)

    def _download(self, repo_type, repo_id, revision, path, head):
        repo = self._repo(repo_type, repo_id)
        oid = self._resolve(repo, revision)
        entry = repo.commits[oid]["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{entry.key}"', "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.key}"', "X-Linked-Size": str(entry.size)})
        self._send(200, headers=headers, body=self.hub.blobs[entry.key], head=head)


if __name__ == "__main__":  # a manual fake Hub: python tests/fake_hub.py
    import time

    with FakeHub() as running:
        print(f"fake hub at {running.url} (token hf_test_token, user tester)", flush=True)
        while True:
            time.sleep(3600)
