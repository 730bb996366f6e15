"""The service's HTTP side, served by the `ShareViewer` deployment on Serve's HTTP proxy.

`share_pages`: a share link's page (`/g/<hash>`), its GLB file
(`/g/<hash>.glb`) and the three.js files the page imports (`/viewer/...`).
`range_response`: a stored GLB (a local file or an object in a bucket) as a
response honouring one byte range. `health`: the load balancer's probes,
`/healthz` and `/readyz` (the readiness checks, each bounded in time).
`api`: the browser front's JSON API (`/api/...`, docs/HTTP_API.md), whose
calls `web_access` answers in the TCP ingress; `errors`: its codes and
HTTP statuses.
"""
