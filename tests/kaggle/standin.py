"""A local stand-in for the Kaggle API: records every request, serves the routes the kit uses."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsResponse, ApiSubmission
from kagglesdk.competitions.types.submission_status import SubmissionStatus


class NotFound(Exception):
    pass


class StandIn:
    def __init__(self):
        self.requests: list[dict] = []  # {method, path, headers, body}
        self.uploads: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}  # route -> how many 503s to answer first
        self.submissions: list[ApiSubmission] = []
        self.polls_until_scored = 1
        self.datasets: dict[str, list[list[str]]] = {}  # owner/slug -> file tokens per version
        self.kernels: dict[str, dict] = {}  # owner/slug -> the last SaveKernel body and its version
        self.kernel_states = ["QUEUED", "RUNNING", "COMPLETE"]  # answered in turn by GetKernelSessionStatus
        self.failure_message = ""
        self.outputs: dict[str, bytes] = {}  # output file name -> content, served under /output/
        self.competition_files: dict[str, bytes] = {}  # competition slug -> its zip, served under /files/
        self.rules_not_accepted: set[str] = set()
        self.log = '[{"stream_name": "stdout", "data": "trained"}]'
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def routes(self):
        return {
            "competitions.CompetitionApiService/StartSubmissionUpload": self.start_upload,
            "competitions.CompetitionApiService/CreateSubmission": self.create_submission,
            "competitions.CompetitionApiService/ListSubmissions": self.list_submissions,
            "competitions.CompetitionApiService/CreateCodeSubmission": self.create_code_submission,
            "blobs.BlobApiService/StartBlobUpload": self.start_upload,
            "datasets.DatasetApiService/CreateDataset": self.create_dataset,
            "datasets.DatasetApiService/CreateDatasetVersion": self.create_dataset_version,
            "kernels.KernelsApiService/SaveKernel": self.save_kernel,
            "kernels.KernelsApiService/GetKernelSessionStatus": self.kernel_status,
            "kernels.KernelsApiService/ListKernelSessionOutput": self.kernel_output,
        }

    def create_code_submission(self, body):
        reply = self.create_submission({"blobFileTokens": body.get("fileName", ""), **body})
        return {"message": "Successfully submitted", "ref": reply["ref"]}

    def create_dataset(self, body):
        ref = f"{body['ownerSlug']}/{body['slug']}"
        self.datasets[ref] = [[f["token"] for f in body.get("files", [])]]
        return {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}

    def create_dataset_version(self, body):
        ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
        if ref not in self.datasets:
            raise NotFound(f"dataset {ref} not found")
        self.datasets[ref].append([f["token"] for f in body["body"].get("files", [])])
        return {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}

    def save_kernel(self, body):
        version = self.kernels.get(body["slug"], {}).get("version", 0) + 1
        self.kernels[body["slug"]] = {"body": body, "version": version}
        return {"ref": body["slug"], "url": f"https://www.kaggle.com/code/{body['slug']}", "versionNumber": version}

    def kernel_status(self, body):
        state = self.kernel_states.pop(0) if len(self.kernel_states) > 1 else self.kernel_states[0]
        return {"status": state, "failureMessage": self.failure_message}

    def kernel_output(self, body):
        files = [{"url": f"{self.url}/output/{name}", "fileName": name} for name in sorted(self.outputs)]
        return {"files": files, "log": self.log}

    def start_upload(self, body):
        token = f"token-{len(self.uploads) + 1}"
        return {"token": token, "createUrl": f"{self.url}/upload/{token}"}

    def create_submission(self, body):
        submission = ApiSubmission()
        submission.ref, submission.description = 1000 + len(self.submissions), body.get("submissionDescription", "")
        submission.status, submission.file_name = SubmissionStatus.PENDING, body["blobFileTokens"]
        submission.date = datetime(2026, 11, 22, tzinfo=UTC)
        self.submissions.append(submission)
        return {"message": "Successfully submitted", "ref": submission.ref}

    def list_submissions(self, body):
        for submission in self.submissions:
            if submission.status == SubmissionStatus.PENDING:
                self.polls_until_scored -= 1
                if self.polls_until_scored <= 0:
                    submission.status, submission.public_score = SubmissionStatus.COMPLETE, "0.61234"
        response = ApiListSubmissionsResponse()
        response.submissions = list(self.submissions)
        return ApiListSubmissionsResponse.to_dict(response)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, payload: dict | None = None):
                data = json.dumps(payload or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                standin.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                return body

            def do_POST(self):
                body = self._record()
                route = self.path.removeprefix("/api/v1/")
                if standin.fail.get(route, 0) > 0:
                    standin.fail[route] -= 1
                    return self._reply(503, {"code": 503, "message": "try again"})
                if route == "competitions.CompetitionApiService/DownloadDataFiles":
                    slug = json.loads(body or b"{}").get("competitionName", "")
                    if slug in standin.rules_not_accepted:
                        message = "You must accept this competition's rules before you'll be able to download files."
                        return self._reply(403, {"code": 403, "message": message})
                    if slug not in standin.competition_files:
                        return self._reply(404, {"code": 404, "message": f"competition {slug} not found"})
                    self.send_response(302)
                    self.send_header("Location", f"{standin.url}/files/{slug}.zip")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                handler = standin.routes().get(route)
                if handler is None:
                    return self._reply(404, {"code": 404, "message": f"no route {self.path}"})
                try:
                    self._reply(200, handler(json.loads(body or b"{}")))
                except NotFound as exc:
                    self._reply(404, {"code": 404, "message": str(exc)})

            def do_GET(self):
                self._record()
                if self.path.startswith("/files/"):
                    return self._file(standin.competition_files.get(self.path.removeprefix("/files/")[:-4]))
                name = self.path.removeprefix("/output/")
                if name not in standin.outputs:
                    return self._reply(404)
                data = standin.outputs[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _file(self, data: bytes | None):
                """A zip, honouring `Range: bytes=N-` (206) so an interrupted download can continue."""
                if data is None:
                    return self._reply(404)
                start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def do_PUT(self):
                body = self._record()
                if standin.fail.get("PUT", 0) > 0:
                    standin.fail["PUT"] -= 1
                    return self._reply(500)
                standin.uploads[self.path.rsplit("/", 1)[-1]] = body
                self._reply(200)

        return Handler
