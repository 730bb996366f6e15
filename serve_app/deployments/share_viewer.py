"""`ShareViewer`: the application's HTTP ingress; share links open in a browser (`serve_app.http.share_pages`).

Serve's HTTP proxy (port 8000 by default, `http_options` in the Serve
config) routes `GET`/`HEAD /g/<hash>` (the page), `/g/<hash>.glb` (the file),
`/g/<hash>.jpg` (its preview picture), `GET /viewer/...` (three.js), `GET /` and `/app/...`
(the browser app's page and files, `serve_app.http.app_files`), its JSON API `/api/...`
(`serve_app.http.api`, answered through the TCP ingress's `web_call`; docs/HTTP_API.md) here, and the load balancer's probes: `GET /healthz`
(the app answers) and `GET /readyz` (200 only when the TCP listener, the model,
the database and the storage root are ready; `serve_app.http.health`). It is the deployment the builder
returns, so the TCP ingress and the stages hang off it in the graph.
"""

# No `from __future__ import annotations` here: FastAPI reads the route parameters' annotations at run time.
from fastapi import FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.responses import JSONResponse, Response

from serve_app.config import AppSettings
from serve_app.http.api import WebApi
from serve_app.http.app_files import AppFiles
from serve_app.http.health import ServiceReadiness
from serve_app.http.share_pages import SharePages

from .replica_logging import use_serve_logging

NO_STORE = {"Cache-Control": "no-store"}  # a probe's answer is only true now
APP_FILES = AppFiles()  # the browser app: `GET /` and `/app/...` (`serve_app.http.app_files`)
share_api = FastAPI(title="VGGT share links", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(
    name="ShareViewer",
    ray_actor_options={"num_cpus": 0.05},
    max_ongoing_requests=32,
)
@serve.ingress(share_api)
class ShareViewer:
    async def __init__(self, settings: AppSettings, tcp_ingress: DeploymentHandle) -> None:
        """tcp_ingress: the TCP ingress, which brings the database schema up to date when it starts."""
        use_serve_logging()
        await tcp_ingress.get_port.remote()  # returns once the TCP ingress (and so the schema) is ready
        self.pages = SharePages(settings)
        self.readiness = ServiceReadiness(settings, tcp_ingress.listening.remote, tcp_ingress.model_status.remote)
        self.api = WebApi(settings, tcp_ingress.web_call.remote)

    @share_api.get("/healthz")
    def healthz(self) -> Response:
        return JSONResponse({"ok": True}, headers=NO_STORE)

    @share_api.get("/readyz")
    async def readyz(self) -> Response:
        ready, body = await self.readiness()
        return JSONResponse(body, status_code=200 if ready else 503, headers=NO_STORE)

    @share_api.api_route("/g/{name}", methods=["GET", "HEAD"])
    def share(self, name: str, request: Request) -> Response:
        head = request.method == "HEAD"
        if name.endswith(".glb"):
            return self.pages.glb(name[: -len(".glb")], request.headers, head=head)
        if name.endswith(".jpg"):
            return self.pages.thumbnail(name[: -len(".jpg")], request.headers, head=head)
        return self.pages.page(name, str(request.url.replace(query="", fragment="")), head=head)

    @share_api.get("/viewer/{path:path}")
    def viewer(self, path: str) -> Response:
        return self.pages.viewer_file(path)

    @share_api.api_route("/", methods=["GET", "HEAD"])
    def app_page(self, request: Request) -> Response:
        return APP_FILES.index(request.headers)

    @share_api.api_route("/app/{path:path}", methods=["GET", "HEAD"])
    def app_file(self, path: str, request: Request) -> Response:
        return APP_FILES.file(path, request.headers)

    @share_api.api_route("/api/{path:path}", methods=["GET", "POST"])
    async def api_call(self, path: str, request: Request) -> Response:
        return await self.api.handle(path, request)

    def __del__(self) -> None:
        pages = getattr(self, "pages", None)
        if pages is not None:
            pages.close()
